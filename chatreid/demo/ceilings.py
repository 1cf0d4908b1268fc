"""Ceilings and chance for a SynthPeds evaluation world: what a ranking by the world's ground truth
(``synthpeds.jsonl``) reaches, and what a random ranking is expected to reach.

- ``body``: rank each gallery image by how many body traits it shares with the query's person:
  gender, age, height (in steps of ``HEIGHT_STEP`` of the relative height), build, skin tone,
  hair style, hair colour, glasses. These survive a change of clothes.
- ``clothes``: by how many outfit fields it shares with the query's outfit (style, upper garment
  type / colour / pattern / pattern colour, lower garment type / colour, shoes and their colour,
  backpack, bag, handbag, hat).
- ``random``: every gallery image tied.

Images with the same count are tied, and the figures are the *expected* Rank-1 and mAP over a
uniformly random order of the ties (exact, not sampled: McSherry & Najork, ECIR 2008), so
``random`` is the exact chance level. Each query is scored under the evaluation protocol: the
gallery images it removes (``chatreid.metrics``) are left out, and queries without a true match
are skipped, as ``eval/run.py`` does. A text query (``t2i``) stands for the image whose caption
it is.

    python -m chatreid.demo ceilings --world runs/demo/eval_worlds/ltcc [--protocol cc] [--trials 10]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HEIGHT_STEP = 0.05
BODY = ("gender", "age", "height", "build", "skin", "hair_style", "hair_colour", "glasses")
CLOTHES = ("style", "upper_type", "upper_color", "pattern", "pattern_color", "lower_type", "lower_color",
           "shoes", "shoes_color", "backpack", "bag", "handbag", "hat")
KINDS = ("body", "clothes", "random")


def body_traits(row: dict) -> tuple:
    t = row["traits"]
    return (t["gender"], t["age"], round(t["height"] / HEIGHT_STEP), t["build"], tuple(t["skin"]),
            t["hair_style"], t["hair_colour"], bool(row["outfit"].get("glasses")))


def outfit(row: dict) -> tuple:
    o = row["outfit"]
    return tuple(json.dumps(o.get(k), sort_keys=True) for k in CLOTHES)


def expected_ap_and_r1(scores: np.ndarray, good: np.ndarray) -> tuple[float, float]:
    """Expected AP and Rank-1 of ranking by descending ``scores`` with ties in random order;
    ``good`` marks the true matches (at least one)."""
    m = int(good.sum())
    ap, before, good_before, r1 = 0.0, 0, 0, None
    for value in np.unique(scores)[::-1]:
        tied = scores == value
        t, r = int(tied.sum()), int((tied & good).sum())
        if r1 is None:
            r1 = r / t
        if r:
            j = np.arange(1, t + 1)
            others = (j - 1) * (r - 1) / (t - 1) if t > 1 else 0.0  # other matches of the group above place j
            ap += r * float(np.mean((good_before + 1 + others) / (before + j)))
        before, good_before = before + t, good_before + r
    return ap / m, float(r1)


def _junk(protocol: str, q_pids, g_pids, q_cams, g_cams, q_clothes, g_clothes) -> np.ndarray:
    """The gallery items each query's ranking leaves out, by the metric's own rule."""
    from chatreid.metrics import _junk as metric_junk

    same = q_pids[:, None] == g_pids[None, :]
    junk = metric_junk(protocol, same, (q_cams, g_cams), (q_clothes, g_clothes), 0, len(q_pids))
    junk = np.zeros_like(same) if junk is None else junk
    if protocol == "market":
        junk = junk | (g_pids == -1)[None, :]
    return junk


def trial_ceilings(q_rows: list[dict], q_items, g_rows: list[dict], gallery, protocol: str) -> dict:
    """Rank-1 and mAP (fractions) of each kind in ``KINDS`` on one trial; ``*_rows`` are the
    ground-truth rows of the queries and the gallery, ``q_items`` / ``gallery`` what the harness
    evaluates (ids, cameras, clothes)."""
    q_pids = np.array([q.pid for q in q_items])
    g_pids = np.array([g.pid for g in gallery])
    cams = [np.array([x if x is not None else -1 for x in v]) for v in
            ([q.camid for q in q_items], [g.camid for g in gallery])]
    clothes = [np.array([str(x) for x in v], dtype=object) for v in
               ([q.clothes for q in q_items], [g.clothes_id for g in gallery])]
    junk = _junk(protocol, q_pids, g_pids, cams[0], cams[1], clothes[0], clothes[1])
    keys = {"body": body_traits, "clothes": outfit}
    agree = {}
    for kind, key in keys.items():
        q = [key(r) for r in q_rows]
        g = [key(r) for r in g_rows]
        agree[kind] = np.array([[sum(a == b for a, b in zip(qa, gb)) for gb in g] for qa in q], dtype=float)
    agree["random"] = np.zeros((len(q_rows), len(g_rows)))
    out = {}
    for kind in KINDS:
        aps, r1s = [], []
        for i in range(len(q_rows)):
            keep = ~junk[i]
            good = (g_pids == q_pids[i])[keep]
            if not good.any():
                continue
            ap, r1 = expected_ap_and_r1(agree[kind][i][keep], good)
            aps.append(ap)
            r1s.append(r1)
        out[kind] = {"mAP": float(np.mean(aps)), "rank1": float(np.mean(r1s)), "queries": len(aps)}
    return out


def world_ceilings(world: str | Path, protocol: str | None = None, trials: int | None = None) -> dict:
    """Each kind's Rank-1 and mAP on the world's evaluation trials (averaged over them), with the
    protocol used: ``{"protocol", "trials", "body": {"mAP", "rank1"}, "clothes": ..., "random": ...}``."""
    from chatreid.evaluation.benchmarks import check_protocol, load_trials

    root = str(Path(world).resolve())
    lines = (Path(root) / "synthpeds.jsonl").read_text().splitlines()
    truth = {}
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = json.loads(line)
                truth[row["path"]] = row
            except (ValueError, KeyError) as err:
                raise ValueError(f"{root}/synthpeds.jsonl line {n}: not a SynthPeds record ({err})") from None

    def rows(paths):
        out = []
        for p in paths:
            rel = str(Path(p).resolve().relative_to(root)) if Path(p).is_absolute() else p
            if rel not in truth:
                raise ValueError(f"{root}/synthpeds.jsonl: no record for {rel}")
            out.append(truth[rel])
        return out

    protocol = check_protocol("synthpeds", root, protocol)
    per_trial = []
    for trial in load_trials("synthpeds", root, protocol, trials):
        q_paths = [q.qid.split("#")[0] if q.text is not None else q.path for q in trial.queries]
        per_trial.append(trial_ceilings(rows(q_paths), trial.queries, rows([g.path for g in trial.gallery]),
                                        trial.gallery, protocol))
    result = {"protocol": protocol, "trials": len(per_trial)}
    for kind in KINDS:
        result[kind] = {m: float(np.mean([t[kind][m] for t in per_trial])) for m in ("mAP", "rank1")}
    return result


def ceilings_table(ceilings: dict) -> str:
    """Markdown: one row per setting, Rank-1 / mAP of each kind."""
    from chatreid.demo.config import SETTING

    lines = ["| setting (protocol) | body traits only R1 / mAP | clothes only R1 / mAP | random R1 / mAP |",
             "|---|---|---|---|"]
    for layout, c in ceilings.items():
        cells = [f"{100 * c[k]['rank1']:.1f} / {100 * c[k]['mAP']:.1f}" for k in KINDS]
        lines.append(f"| {SETTING.get(layout, layout)} ({layout}, `{c['protocol']}`) | " + " | ".join(cells) + " |")
    return "\n".join(lines)

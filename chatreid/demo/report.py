"""The demo build's outputs in words: the model card (``model_card``; its first paragraph is the
chat app's banner) and ``docs/demo-report.md`` (``report``, ``write_report``) with its learning-curve
figure (``plot_curves``), all from the build's summary (``runs/demo/summary.json``).
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

from chatreid.atomic import write_text
from chatreid.demo.config import CHAINS, LAYOUTS, SETTING, DemoConfig, seed_label


def model_card(cfg: DemoConfig, params: int, results: dict) -> str:
    """README.md of the demo model. Its first paragraph is the banner the chat app shows
    (``chatreid.chat.settings.banner_markdown``; the heading follows the front matter directly, so
    it is skipped)."""
    main = results.get("market", {}).get("1+2+3")
    pre = results.get("market", {}).get("pre-filter")
    score = (f" (SynthPeds standard Re-ID: Rank-1 {100 * main['rank1']:.1f}, mAP {100 * main['mAP']:.1f}"
             + (f", against {100 * pre['mAP']:.1f} for its pre-filter alone" if pre else "") + ")") if main else ""
    image_layouts = [l for l in LAYOUTS if "pre-filter" in results.get(l, {}) and "1+2+3" in results[l]]
    # a setting where re-ranking does not beat the pre-filter by a point is named where users read it
    short = [l for l in image_layouts if results[l]["1+2+3"]["mAP"] < results[l]["pre-filter"]["mAP"] + 0.01]
    if short:
        score += (f"; in the {' and '.join(SETTING[l] for l in short)} setting{'s' if len(short) > 1 else ''} "
                  f"it does not beat its own pre-filter, so treat those answers as a demonstration of the pipeline")
    return f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: image-text-to-text
tags: [chatreid, person-reid, qwen2-vl, demo]
---
# ChatReID demo model

This is the **ChatReID demo model**: a {params / 1e6:.1f}M-parameter Qwen2-VL-architecture model trained from \
scratch on CPU cores: a comparison pretraining standing in for the pretrained VLM the paper starts from, \
then the paper's three stages, all on SynthPeds, our procedural pedestrian world{score}. It knows synthetic people only: do not expect it to work on real photos. To use a real \
checkpoint, start the app with `python app.py --model PATH_OR_HUB_ID` or set `CHATREID_MODEL`.

Built by `python -m chatreid.demo build --config {cfg.name}` (seed {cfg.seed}); the numbers, the stage
ablation and the baselines are in `docs/demo-report.md`.

## Configuration

```json
{json.dumps(cfg.to_dict(), indent=1, default=str)}
```
"""


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def merge_seeds(summary: dict, others: list[dict]) -> dict:
    """``summary`` with the stage seeds of ``others`` added after its own: builds that reused its
    pretrained base (``--reuse-pretraining``) with later stage seeds (``--set stage_seed=K``), run
    side by side. Their chains join as further seeds (``1+2+3@1``...), with their curves and losses;
    the recipe must be the same apart from the stage seed."""
    cfg = summary["config"]
    out = json.loads(json.dumps(summary))
    seen = {cfg["seed"] + cfg.get("stage_seed", 0) + j for j in range(cfg["seeds"])}
    k = cfg["seeds"]
    for other in others:
        theirs = other["config"]
        differ = sorted(f for f in cfg if f not in ("name", "seeds", "stage_seed") and theirs.get(f) != cfg[f])
        if differ:
            raise ValueError(f"a build of another recipe cannot join as a seed: it differs in {', '.join(differ)}")
        if (other.get("pretraining") or {}).get("curve") != (summary.get("pretraining") or {}).get("curve"):
            raise ValueError("a build from another pretrained base cannot join as a seed (build it with "
                             "--reuse-pretraining in a copy of this build's work folder)")
        for j in range(theirs["seeds"]):
            seed = theirs["seed"] + theirs.get("stage_seed", 0) + j
            if seed in seen:
                raise ValueError(f"stage seed {seed} is already in the report")
            seen.add(seed)
            for layout, rows in other["results"].items():
                for label, r in rows.items():
                    chain, _, at = label.partition("@")
                    if chain in CHAINS and int(at or 0) == j:
                        out["results"].setdefault(layout, {})[seed_label(chain, k)] = r
            for table in ("curves", "losses"):
                for run, v in (other.get(table) or {}).items():
                    name, _, at = run.partition("@")
                    if int(at or 0) == j:
                        out.setdefault(table, {})[f"{name}@{k}"] = v
            k += 1
    out["config"]["seeds"] = k
    return out


def _seed_runs(results: dict, layout: str, key: str, seeds: int) -> list[dict]:
    """The results of row ``key`` in ``layout`` for each stage seed that has one."""
    by_label = results.get(layout, {})
    return [by_label[seed_label(key, k)] for k in range(max(seeds, 1)) if seed_label(key, k) in by_label]


def _mean(xs):
    return sum(xs) / len(xs) if xs else None


def _sd(xs) -> float:
    m = _mean(xs)
    return (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0


def chain_mean_maps(results: dict, chain: str, seeds: int) -> list[float]:
    """Per stage seed, ``chain``'s mAP averaged over the settings (the Table 4 number); seeds
    missing a setting are left out."""
    out = []
    for k in range(max(seeds, 1)):
        label = seed_label(chain, k)
        maps = [results[l][label]["mAP"] for l in LAYOUTS if label in results.get(l, {})]
        if len(maps) == len(LAYOUTS):
            out.append(sum(maps) / len(maps))
    return out


def _verdicts(cfg: DemoConfig, results: dict) -> list[str]:
    """The targets of the build, in words: VLM re-ranking against the pre-filter per image setting,
    and the Table 4 ordering over the stage seeds."""
    out = []
    for layout in LAYOUTS:
        pre = results.get(layout, {}).get("pre-filter")
        runs = _seed_runs(results, layout, "1+2+3", cfg.seeds)
        if pre and runs:
            gains = [r["mAP"] - pre["mAP"] for r in runs]
            out.append(f"- {SETTING[layout]} ({layout}): 1+2+3 re-ranking vs the pre-filter alone, mAP "
                       f"{'+' if _mean(gains) >= 0 else ''}{100 * _mean(gains):.1f} points"
                       + (f" (per seed: {', '.join(f'{100 * g:+.1f}' for g in gains)})" if len(gains) > 1 else "") + ".")
    if cfg.ablation:
        order = [(c, chain_mean_maps(results, c, cfg.seeds)) for c in ("1+2+3", "2+3", "3")]
        if all(m for _, m in order):
            text = ", ".join(f"{c} {100 * _mean(m):.1f}" + (f" ±{100 * _sd(m):.1f}" if len(m) > 1 else "")
                              for c, m in order)
            n = min(len(m) for _, m in order)
            held = sum(order[0][1][k] > order[1][1][k] > order[2][1][k] for k in range(n))
            beyond = all(_mean(a) - _mean(b) > _sd(a) + _sd(b) for (_, a), (_, b) in zip(order, order[1:])) and n > 1
            out.append(f"- Table 4 in miniature, mean mAP over the four settings (mean ± sd over {n} stage "
                       f"seed{'s' if n > 1 else ''}): {text}. The ordering 1+2+3 > 2+3 > 3 holds in {held} of "
                       f"{n} seeds" + ("; every gap is larger than the two seed sds together" if beyond else
                                       "; not every gap is beyond the seed-to-seed spread" if n > 1 else "") + ".")
    return out


CURVES_PNG = "img/demo-curves.png"  # beside the report
CURVE_LAYOUTS = ("market", "ltcc", "sysu")
CHAIN_RUNS = {"1+2+3": ("s1", "s12", "s123"), "2+3": ("s2", "s23"), "3": ("s3",)}


def chain_curve(summary: dict, chain: str) -> list[tuple[int, str, dict]]:
    """(steps since the random base, run, AUCs) along ``chain`` for seed 0: the pretraining curve,
    then each stage's, each stage starting where the one before it ended."""
    pre = (summary.get("pretraining") or {}).get("curve") or []
    points = [(p["step"], "pretraining", p["auc"]) for p in pre]
    offset = pre[-1]["step"] if pre else 0
    for run in CHAIN_RUNS[chain]:
        curve = (summary.get("curves") or {}).get(run) or []
        points += [(offset + p["step"], run, p["auc"]) for p in curve]
        offset += curve[-1]["step"] if curve else 0
    return points


def learning_curves(summary: dict, cfg: DemoConfig) -> str:
    """The report's learning-curve section: pretraining by level, then each chain's stages."""
    pre, curves = summary.get("pretraining"), summary.get("curves") or {}
    if not pre and not curves:
        return ""
    cols = [l for l in CURVE_LAYOUTS if l in cfg.eval_ids]
    head = "| step | run | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols)
    out = ["## Learning curves: held-out P(Yes) AUC", "",
           f"Measured while training, on {cfg.curve_pairs} same-identity and {cfg.curve_pairs} other-identity pairs "
           "per layout of the evaluation worlds' people (random other identities; the pre-filter plays no part). "
           "Steps count from the random base; each stage starts where its predecessor ended. "
           f"Figure: `{CURVES_PNG}`.", ""]
    if pre:
        levels = ", ".join(f"{lv['level']} {lv['steps']} steps (loss {lv['end_loss']})" for lv in pre["levels"])
        out += [f"Comparison pretraining ({pre['seconds']:.0f} s): {levels}.", ""]
    for chain in CHAIN_RUNS:
        points = chain_curve(summary, chain)
        if not any(run != "pretraining" for _, run, _ in points):
            continue
        if chain != "1+2+3":  # the shared pretraining rows are shown once
            points = [p for p in points if p[1] != "pretraining"]
        out += [f"**{chain}**", "", head]
        out += [f"| {step} | {run} | " + " | ".join(f"{auc[l]:.2f}" if l in auc else "—" for l in cols) + " |"
                for step, run, auc in points]
        out.append("")
    return "\n".join(out)


def plot_curves(summary: dict, path: Path) -> None:
    """One panel per image layout: held-out P(Yes) AUC against steps for each chain (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVE_LAYOUTS), figsize=(4.2 * len(CURVE_LAYOUTS), 3.4), sharey=True)
    for ax, layout in zip(axes, CURVE_LAYOUTS):
        for chain in CHAIN_RUNS:
            points = [(s, a[layout]) for s, _, a in chain_curve(summary, chain) if layout in a]
            if points:
                ax.plot(*zip(*points), label=chain, lw=1.5)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        pre = (summary.get("pretraining") or {}).get("curve") or []
        if pre:
            ax.axvline(pre[-1]["step"], color="grey", lw=0.8, ls="--")
        ax.set_title(f"{SETTING[layout]} ({layout})")
        ax.set_xlabel("training steps (pretraining, then stages)")
    axes[0].set_ylabel("held-out P(Yes) AUC")
    axes[-1].legend(title="chain")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(summary: dict) -> str:
    """docs/demo-report.md from a build's summary (``runs/demo/summary.json``)."""
    cfg = DemoConfig(**summary["config"])
    cfg.steps = {int(k): v for k, v in cfg.steps.items()}  # JSON made the stage keys strings
    results, params = summary["results"], summary["params"]
    verdict = _verdicts(cfg, results)
    seeds_note = (f"Chain rows: mean over {cfg.seeds} stage-training seeds (one shared base), ± the seed sd of "
                  f"mAP; the demo model is seed {cfg.seed}'s 1+2+3." if cfg.seeds > 1 else "")
    sizes = []
    for layout in LAYOUTS:
        any_r = next(iter(results.get(layout, {}).values()), None)
        if any_r:
            sizes.append(f"{layout}: {any_r['queries']} queries, gallery {any_r['gallery']}, protocol `{any_r['protocol']}`")
    text = f"""# ChatReID demo build: the method in miniature on SynthPeds

Regenerated by `python -m chatreid.demo build --config {cfg.name}` (seed {cfg.seed}); do not edit by hand.
The model ({params / 1e6:.2f}M parameters) starts from random weights. The comparison pretraining
(`chatreid.training.compare`, {cfg.pretrain_steps} steps on SynthPeds worlds of its own) stands in for
the pretrained VLM of the paper. Then the stages run through `train/sft.py`, and every chain of the
ablation starts from that one pretrained base. Everything is evaluated with `eval/run.py` on **fresh
worlds**: SynthPeds worlds drawn only for evaluation, whose people no step of the build trained or
pretrained on (their held-out identities, under each benchmark's protocol).

## Results (Rank-1 / mAP, %)

VLM rows: pairwise P(Yes) re-ranking of the pre-filter's top {cfg.top_k} (image queries), the rest
in pre-filter order; {_text_rows_note(results)}

{results_table(cfg, results)}

{seeds_note}

{chr(10).join(verdict)}

Evaluation sets: {'; '.join(sizes)}. SYSU: {cfg.sysu_trials} of the 10 gallery trials.

{ceilings_section(summary)}

{text_prefilter_section(summary)}

{attributes_section(summary)}

{learning_curves(summary, cfg)}

{separation_section(summary)}

{build_section(summary, cfg)}
"""
    return re.sub(r"\n{4,}", "\n\n\n", text)  # a section a build has no figures for leaves no gap


def _text_rows_note(results: dict) -> str:
    """How the text-to-image column was ranked: the VLM over the text pre-filter's head, or over
    the whole gallery (a build without a text pre-filter)."""
    vlm = results.get("pedes", {}).get("1+2+3") or {}
    if vlm.get("top_k"):
        return (f"text-to-image queries: the VLM re-ranks the text pre-filter's top {vlm['top_k']} (the head it "
                "ships with), and that pre-filter alone is the pedes entry of the pre-filter row.")
    note = "text-to-image queries: the VLM scores the whole gallery"
    if "pre-filter" in results.get("pedes", {}):
        note += ("; the pre-filter row's pedes entry is the text pre-filter alone (measured after this build "
                 "on its evaluation world, which the build did not yet do)")
    return note + "."


def ceilings_section(summary: dict) -> str:
    """Ground-truth ceilings and chance of every evaluation world (``chatreid.demo.ceilings``)."""
    ceilings = summary.get("ceilings")
    if not ceilings:
        return ""
    from chatreid.demo.ceilings import HEIGHT_STEP, ceilings_table

    return f"""## Ceilings and chance (Rank-1 / mAP, %)

What the figures above can be read against: each evaluation world ranked by SynthPeds' ground truth
(`synthpeds.jsonl`), under the same protocol and trials. *Body traits only*: how many of gender, age,
height (in steps of {HEIGHT_STEP:g}), build, skin tone, hair style, hair colour and glasses a gallery
image's person shares with the query's; *clothes only*: how many outfit fields (garment types,
colours, pattern, shoes, bags, hat) it shares with the query's outfit; *random*: every image tied.
Ties are in random order, and each figure is its exact expectation. The ground truth knows colours
that an infrared photo does not show, so the sysu ceilings are ceilings of the data, not of what the
photos show. `python -m chatreid.demo ceilings --world DIR` computes them for any world.

{ceilings_table(ceilings)}"""


def attributes_section(summary: dict) -> str:
    """Stage 1's attribute answers and descriptions on held-out people, beside the majority class."""
    figures = summary.get("attributes")
    if not figures:
        return ""
    from chatreid.demo.attributes import attributes_table

    parts = [f"### {label}\n\n{attributes_table(result)}" for label, result in figures.items()]
    return """## Attributes: stage 1's answers on held-out people

Each attribute asked as a closed choice through stage 1's caption prompt: the candidates are the
image's caption with only that attribute changed, and the model's answer is the one it finds most
likely (`chatreid.demo.attributes`; `python -m chatreid.demo attributes --model M --world W`).
Descriptions are generated greedily and read back attribute by attribute.

""" + "\n".join(parts)


def text_prefilter_section(summary: dict) -> str:
    """What the shipped text-to-image pre-filter is, how it was trained, and its held-out recall."""
    tp = summary.get("text_prefilter")
    if not tp:
        return ""
    held = tp.get("held_out") or {}
    recall = ", ".join(f"@{k} {100 * v:.1f}%" for k, v in (held.get("recall") or {}).items())
    chance = ", ".join(f"@{k} {100 * v:.1f}%" for k, v in (held.get("chance") or {}).items())
    return f"""## The text-to-image pre-filter

Shipped in the model's `text-prefilter/` folder (`chatreid.demo.text_prefilter`; `eval/run.py` and
the app use it for text queries without flags). A Re-ID baseline (EfficientNet-Lite0, 128x64,
{tp.get('baseline_steps')} steps, {tp.get('baseline_seconds')} s) and a dual encoder over it
({tp.get('train_seconds')} s), trained on a pedes world of its own (seed {tp.get('world_seed')}):
{tp.get('train_captions')} captions of {tp.get('train_images')} train images. On that world's held-out identities
({held.get('queries')} captions against {held.get('gallery')} images) recall {recall} (random: {chance}).
The VLM re-ranks its top {tp.get('head')} by default (the smallest k there with recall >= 95%).{_text_runs(tp)}"""


def _text_runs(tp: dict) -> str:
    """Runs of the shipped model with its text pre-filter made after its build (``eval``: label ->
    world, R1, mAP, command), as a table; empty for a build that ran them itself."""
    runs = tp.get("eval") or {}
    if not runs:
        return ""
    lines = ["", "", "Measured after the build, with `eval/run.py` defaults (text pre-filter and its head) "
             "unless the command says otherwise:", "",
             "| run | world | R1 / mAP | command |", "|---|---|---|---|"]
    lines += [f"| {label} | {r['world']} | {_pct(r['rank1'])} / {_pct(r['mAP'])} | `{r['command']}` |"
              for label, r in runs.items()]
    return "\n".join(lines)


def results_table(cfg: DemoConfig, results: dict) -> str:
    """Rank-1 / mAP per setting of every chain (mean ± sd over the stage seeds) and baseline."""
    rows = [("1+2+3", "ChatReID demo (stages 1+2+3)")]
    if cfg.ablation:
        rows += [("2+3", "stages 2+3"), ("3", "stage 3 alone")]
    if cfg.diagnostic:
        rows += [("1+2", "stages 1+2 (no stage 3; diagnostic)")]
    text = "; text: the text pre-filter" if "pre-filter" in results.get("pedes", {}) else ""
    rows += [("pre-filter", f"pre-filter alone (`{cfg.prefilter}`{text})"),
             ("colour histogram", "colour histogram (HSV, no learning)")]
    head = "| model | " + " | ".join(f"{SETTING[l]} ({l}) R1 / mAP" for l in LAYOUTS) + " | mean mAP |"
    lines = [head, "|" + "---|" * (len(LAYOUTS) + 2)]
    chains = {key for key, _ in rows} & set(CHAINS)
    for key, name in rows:
        cells, maps = [], []
        for layout in LAYOUTS:
            runs = _seed_runs(results, layout, key, cfg.seeds if key in chains else 1)
            if not runs:
                cells.append("—")
                continue
            r1, m = _mean([r["rank1"] for r in runs]), [r["mAP"] for r in runs]
            cells.append(f"{_pct(r1)} / {_pct(_mean(m))}" + (f" ±{_pct(_sd(m))}" if len(m) > 1 else ""))
            maps.append(_mean(m))
        mean = _pct(sum(maps) / len(maps)) if len(maps) == len(LAYOUTS) else "—"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines)


def separation_section(summary: dict) -> str:
    """"Does the VLM tell people apart?": P(Yes) AUC per chain and setting, then beside it the AUC
    of the model's own image features (``chatreid.demo.separation``)."""
    sep = summary.get("separation") or {}
    sep_rows = "\n".join(
        f"| {key} | " + " | ".join(
            (lambda r: "—" if r is None else f"{r['auc']:.2f} ({r['p_same']:.2f} / {r['p_other']:.2f})")(
                sep.get(l, {}).get(key)) for l in LAYOUTS) + " |"
        for key in CHAINS if any(key in sep.get(l, {}) for l in LAYOUTS))
    fsep = summary.get("feature_separation") or {}
    feat_layouts = [l for l in LAYOUTS if l in fsep]
    feat_rows = "\n".join(
        f"| {key} | " + " | ".join(
            f"{sep.get(l, {}).get(key, {}).get('auc', float('nan')):.2f} | {fsep[l][key]['auc']:.2f}"
            if key in fsep[l] else "— | —" for l in feat_layouts) + " |"
        for key in CHAINS if any(key in fsep[l] for l in feat_layouts))
    feat_table = ("| model | " + " | ".join(f"{l} P(Yes) AUC | {l} feature AUC" for l in feat_layouts) + " |\n|---|"
                  + "---|---|" * len(feat_layouts) + "\n" + feat_rows) if feat_rows else "(not measured in this build)"
    return f"""## Does the VLM tell people apart?

AUC of P(Yes) for same-identity vs other-identity candidates among those each model scored
(read from eval/run.py's ranking files; 0.5 is chance), and mean P(Yes) of each group.
The pre-filter's head is hard: its candidates already look alike.

| model | {' | '.join(f'{l} AUC (P same / P other)' for l in LAYOUTS)} |
|---|{'---|' * len(LAYOUTS)}
{sep_rows}

### The vision side vs the comparison

On the same pairs (image queries), the AUC of the cosine between each model's own image features
(its merged vision tokens pooled into 8 regions; no decoder involved) beside the AUC of its
P(Yes). Feature AUCs well above the P(Yes) AUCs mean that the image tokens the decoder reads already
carry what tells these people apart (even a random encoder's do: stage 3 alone keeps its random
encoder frozen) and the decoder has not learned to compare two images. `docs/demo-learning.md`
has the experiments behind this.

{feat_table}"""


def _run_label(run: str) -> str:
    """A run folder's name as a chain: ``s123`` -> ``1+2+3``, ``s23@1`` -> ``2+3 (seed 1)``."""
    chain, _, seed = run.partition("@")
    return "+".join(chain[1:]) + (f" (seed {seed})" if seed else "")


def build_section(summary: dict, cfg: DemoConfig) -> str:
    """The final losses, the machine and wall time of each step, and the configuration."""
    losses = summary.get("losses") or {}
    loss_rows = "\n".join(f"| {_run_label(k)} | {cfg.steps[int(k.partition('@')[0][-1])]} | "
                          f"{v if v is None else round(v, 3)} |" for k, v in losses.items())
    steps = "\n".join(f"| {k} | {v} |" for k, v in summary["steps_s"].items())
    return f"""## Training (final logged loss, answer tokens only)

| chain | steps of its last stage | loss |
|---|---|---|
{loss_rows}

## Build

- machine: {os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()};
  load average (1/5/15 min) at start {summary["load_start"]}, at end {summary["load_end"]}
- total wall time: {summary["total_s"]} s

| step | seconds |
|---|---|
{steps}

## Configuration

```json
{json.dumps(cfg.to_dict(), indent=1, default=str)}
```"""


def write_report(summary: dict, path: Path) -> None:
    text = report(summary)
    if summary.get("curves") or summary.get("pretraining"):
        plot_curves(summary, Path(path).parent / CURVES_PNG)
    write_text(path, text)  # a reader never sees half a report

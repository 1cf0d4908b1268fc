"""Markdown tables in the layout of the paper's Tables 1-5 from ``eval/run.py`` results.

``render(results)`` turns the ``results.json`` of runs (``collect(dirs)`` finds them) into the
paper's tables. Every ``results.json`` is one (model, benchmark) run. Tables 1, 2, 3 and 5 have one
row per model and "mAP | Rank-1" per benchmark; Table 4 (the stage ablation) has one row per
checkpoint and the mAP of the ten benchmarks plus their average (over the benchmarks present,
which the header says when some are missing). Metrics are percentages, one decimal. Runs on
SynthPeds are reported in a table of their own, by protocol. Then how the numbers were made and
where the setup departs from the paper's. The command is ``python eval/table.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from chatreid.evaluation.benchmarks import DISPLAY, TABLE4_COLUMNS, TABLES


def collect(dirs) -> list[dict]:
    """All results.json under ``dirs`` (each a folder or a results.json file), in path order."""
    found = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            found.append(d)
        elif d.is_dir():
            found += sorted(d.rglob("results.json"))
        else:
            raise FileNotFoundError(f"no such results folder: {d}")
    if not found:
        raise ValueError(f"no results.json under {', '.join(map(str, dirs))}")
    return [json.loads(p.read_text()) for p in found]


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _index(results) -> tuple[list[str], dict]:
    """Model labels in first-seen order, and {(label, dataset): mean metrics}."""
    labels, cells = [], {}
    for r in results:
        if r["label"] not in labels:
            labels.append(r["label"])
        cells[(r["label"], column(r))] = r["mean"]
    return labels, cells


def column(r: dict) -> str:
    """A benchmark column; SynthPeds runs get one column per protocol."""
    return f"synthpeds/{r['protocol']}" if r["dataset"] == "synthpeds" else r["dataset"]


def _name(col: str) -> str:
    return f"SynthPeds ({col.split('/')[1]})" if col.startswith("synthpeds/") else DISPLAY[col]


def paper_tables(results: list[dict]) -> str:
    labels, cells = _index(results)
    out = []
    for table, title, cols in TABLES:
        cols = [c for c in cols if any((lab, c) in cells for lab in labels)]
        if not cols:
            continue
        out.append(f"**{table}. {title}** (mAP / Rank-1, %)\n")
        out.append("| Methods | " + " | ".join(f"{DISPLAY[c]} mAP | {DISPLAY[c]} Rank-1" for c in cols) + " |")
        out.append("|---|" + "---:|---:|" * len(cols))
        for lab in labels:
            row = []
            for c in cols:
                m = cells.get((lab, c))
                row += [_pct(m and m["mAP"]), _pct(m and m["rank1"])]
            out.append(f"| {lab} | " + " | ".join(row) + " |")
        out.append("")
    synth = [r for r in results if r["dataset"] == "synthpeds"]
    if synth:
        out.append("**SynthPeds** (mAP / Rank-1 / mINP, %)\n")
        out.append("| Methods | protocol | strategy | pre-filter | top-k | mAP | Rank-1 | mINP | queries |")
        out.append("|---|---|---|---|---:|---:|---:|---:|---:|")
        for r in synth:
            m = r["mean"]
            out.append(f"| {r['label']} | {r['protocol']} | {r['strategy']} | {r['prefilter']} | {r['top_k'] or 'all'} | "
                       f"{_pct(m['mAP'])} | {_pct(m['rank1'])} | {_pct(m['mINP'])} | {r['num_queries']} |")
        out.append("")
    return "\n".join(out)


def ablation_table(results: list[dict]) -> str:
    """Table 4: mAP of each checkpoint on the ten benchmarks, and their average."""
    labels, cells = _index(results)
    cols = [c for c in TABLE4_COLUMNS if any((lab, c) in cells for lab in labels)]
    synth = sorted({c for _, c in cells if c.startswith("synthpeds/")})
    if not cols and not synth:
        return ""
    missing = [DISPLAY[c] for c in TABLE4_COLUMNS if c not in cols]
    cols += synth
    avg = "Avg." if not missing else f"Avg. ({len(cols)} columns)"
    note = f"; benchmarks not run: {', '.join(missing)}" if missing else ""
    note += "; LTCC before PRCC, as in Table 2 (the paper's Table 4 prints PRCC first)"
    out = ["**Table 4. Stage ablation** (mAP, %)" + note + "\n",
           "| Methods | " + " | ".join(_name(c) for c in cols) + f" | {avg} |",
           "|---|" + "---:|" * (len(cols) + 1)]
    for lab in labels:
        vals = [cells[(lab, c)]["mAP"] if (lab, c) in cells else None for c in cols]
        have = [v for v in vals if v is not None]
        mean = sum(have) / len(have) if len(have) == len(cols) else None  # no average of a partial row
        out.append(f"| {lab} | " + " | ".join(_pct(v) for v in vals) + f" | {_pct(mean)} |")
    return "\n".join(out) + "\n"


# the ImageNet / untrained pre-filters; anything else given to --prefilter is a trained baseline
_UNTRAINED_PREFILTERS = ("efficientnet_lite0", "resnet50", "vlm", "color_histogram")
_FULL_TRIALS = {"sysu": 10, "regdb": 10}


def _tau(r: dict) -> str:
    """tau, where it came from, and what fell below it (appended unscored, in pre-filter order)."""
    tau, cal, m = r["tau"], r.get("tau_calibration"), r.get("mean") or {}
    text = f"tau {tau:.3g}" if isinstance(tau, (int, float)) else f"tau {tau}"
    if cal:
        own = " **on the evaluated folder itself**" if cal.get("validation_root") == str(r.get("root")) else ""
        text += f" (calibrated: {100 * cal['target_recall']:.0f}% recall of matches on `{cal['validation']}`{own})"
    if "below_tau" in m:
        text += (f"; below tau, unscored, after the scored images in pre-filter order: {100 * m['below_tau']:.1f}% "
                 f"of the gallery, {100 * m['matches_below_tau']:.1f}% of true matches")
    return text


def _cut(r: dict) -> str:
    if r["protocol"] == "t2i" and not r.get("text_prefilter"):  # no image to pre-filter with
        return "whole gallery"
    top_k = r.get("top_k") or (r.get("text_head") if r.get("tau") is None else None)  # a caption's default head
    parts = ([f"top {top_k}"] if top_k else []) + ([_tau(r)] if r.get("tau") is not None else [])
    return " and ".join(parts) or "whole gallery"


def _full_trials(r: dict) -> int:
    """The trials the protocol averages over (recorded by eval/run.py with its options)."""
    return int(r.get("trials_of") or _FULL_TRIALS.get(r["protocol"], 1))


# protocols whose trials are identity splits, each with its own training identities
_SPLIT_PROTOCOLS = ("regdb", "cuhk03_classic")


def leak(r: dict) -> str | None:
    """Why the trials of a split benchmark (RegDB, CUHK03 classic) may test on identities the
    checkpoint or pre-filter trained on; None where each trial's models are clean for it."""
    if r["protocol"] not in _SPLIT_PROTOCOLS:
        return None
    per = r.get("checkpoints")
    if per is None:
        return ("what scored each trial not recorded: the trials may test on identities the checkpoint or "
                "pre-filter trained on") if len(r["trials"]) > 1 else None
    unknown = [t for t, c in per.items() if "not recorded" in (c["model_trials"], c["prefilter_trials"])]
    if not unknown:
        return None
    one = len({c["model"] for c in per.values()}) == 1
    return (f"{'one checkpoint for all trials' if one else 'checkpoints'} without a trial record: trial(s) "
            f"{', '.join(unknown)} may test on identities it trained on")


def _trials(r: dict) -> str:
    full = _full_trials(r)
    return f"{len(r['trials'])} of {full}" if full > 1 else str(len(r["trials"]))


def _trials_cell(r: dict) -> str:
    """The trials, and for split benchmarks whether each was scored by models clean for it."""
    text = _trials(r)
    if r["protocol"] in _SPLIT_PROTOCOLS and len(r["trials"]) > 0:
        why = leak(r)
        per = r.get("checkpoints") or {}
        if why:
            text += f" (**{why}**)"
        elif any(c["model_trials"] == "own trial" for c in per.values()):
            text += ", each scored by a checkpoint trained on that trial"
        elif per:
            text += ", scored by models not trained on this benchmark"
    return text


def _options(r: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((r.get("options") or {}).items())) or "-"


def provenance_table(results: list[dict]) -> str:
    """How each number above was made: checkpoint, scoring, pre-filter and its cut, trials, protocol."""
    out = ["**How these numbers were made**\n",
           "| Methods | benchmark | checkpoint | strategy | scoring prompt (trained by the last stage?) | pre-filter | "
           "VLM scores | window | trials | protocol | options |",
           "|---|---|---|---|---|---|---|---:|---|---|---|"]
    for r in results:
        sc = r.get("scoring") or {}
        trained = {True: "yes", False: "**no**", None: "not recorded"}[sc.get("trained")]
        prompts = ", ".join(f"`{p}`" for p in sc.get("prompts", [])) or "not recorded"
        ckpt = (r.get("model") or {}).get("name_or_path", "?")
        bench = _name(column(r)) if column(r) in DISPLAY or r["dataset"] == "synthpeds" else r["dataset"]
        out.append(f"| {r['label']} | {bench} | `{ckpt}` | {r['strategy']} | {prompts} ({trained}) | `{r['prefilter']}` | {_cut(r)} | "
                   f"{r.get('window') or '-'} | {_trials_cell(r)} | {r['protocol']} | {_options(r)} |")
    return "\n".join(out) + "\n"


def departures(results: list[dict]) -> list[str]:
    """Where the setup of these runs departs from the paper's evaluation (sec. 4.1), in words."""
    notes = []
    if any(r["dataset"] == "synthpeds" for r in results):
        notes.append("SynthPeds runs are on synthetic worlds in a benchmark's layout, not on the benchmark itself.")
    if any(r["strategy"] == "pairwise" for r in results):
        notes.append("`pairwise` ranks by each candidate's P(Yes) to a Yes/No question; the paper ranks by multi-turn "
                     "best choice (`--strategy best_choice`).")
    # the image side of IMAGE+TEXT ranks photo queries
    imagenet = sorted({r["prefilter"].split("+")[0] for r in results
                       if r["prefilter"].split("+")[0] in _UNTRAINED_PREFILTERS and r["protocol"] != "t2i"})
    if imagenet:
        notes.append(f"Pre-filter {', '.join(f'`{p}`' for p in imagenet)}: features not trained for Re-ID on the "
                     "benchmark; the paper filters with a Re-ID baseline model (e.g. ResNet-50) "
                     "(`train/baseline.py`, then `--prefilter PATH`).")
    trained = sorted({r["prefilter"] for r in results if r["prefilter"] not in (*_UNTRAINED_PREFILTERS, "none")})
    if trained:
        notes.append(f"Pre-filter {', '.join(f'`{p}`' for p in trained)}: a baseline trained by this project "
                     "(`train/baseline.py`, `train/text_prefilter.py`); the paper names only \"a baseline model (e.g., "
                     "ResNet-50)\" on image queries, so which images reach the VLM differs.")
    if any(r["prefilter"] == "none" and r["protocol"] != "t2i" for r in results):
        notes.append("`--prefilter none`: the VLM scores the whole gallery, with no baseline filtering it first.")
    elif any(_cut(r) == "whole gallery" and r["protocol"] != "t2i" for r in results):
        notes.append("No `--top-k` or `--tau`: the VLM scores the whole gallery; the paper scores only the images the "
                     "pre-filter keeps.")
    if any(r.get("top_k") and r.get("tau") is None and r["protocol"] != "t2i" for r in results):
        notes.append("The VLM scores the pre-filter's top k; the paper keeps the images above a similarity threshold tau.")
    taus = [r for r in results if r.get("tau") is not None]
    if taus:
        notes.append("tau is ours (given, or calibrated for a target recall of true matches): the paper gives no value "
                     "or rule for it.")
    if any(not r.get("tau_calibration") for r in taus):
        notes.append("tau was set by hand, not calibrated (`--tau auto` after `--task calibrate`).")
    if any((r.get("tau_calibration") or {}).get("validation_root") == str(r.get("root")) for r in taus):
        notes.append("tau was calibrated on the evaluated folder itself, so its recall there is not a held-out figure.")
    lost = [100 * r["mean"]["matches_below_tau"] for r in taus if "matches_below_tau" in (r.get("mean") or {})]
    if lost:
        notes.append(f"Images below tau are appended unscored in pre-filter order; up to {max(lost):.1f}% of true "
                     "matches fell there.")
    notes += _best_choice_departures(results)
    notes += _protocol_departures(results)
    if any(r["protocol"] == "t2i" and _cut(r) == "whole gallery" for r in results):
        notes.append("Text queries are not pre-filtered: the VLM scores the whole gallery for each caption.")
    short = sorted({f"{r['protocol']} ({_trials(r)})" for r in results if len(r["trials"]) < _full_trials(r)})
    if short:
        notes.append(f"Fewer trials than the protocol averages over: {', '.join(short)}.")
    untrained = sorted({r["label"] for r in results if (r.get("scoring") or {}).get("trained") is False})
    if untrained:
        notes.append(f"{', '.join(untrained)}: scored with a prompt the checkpoint's last stage did not train.")
    return notes


# benchmark -> the protocol the paper's tables compare against (Table 2: CAL's LTCC rows are its
# general figures, the PRCC rows cloth-changing ones)
_PAPER_PROTOCOL = {"ltcc": "general", "prcc": "cc"}


def _best_choice_departures(results: list[dict]) -> list[str]:
    """Best-choice: the ranking rule, the page size and the debiasing are ours or our reading."""
    notes = []
    runs = [r for r in results if r["strategy"] == "best_choice"]
    if not runs:
        return notes
    ways = [(r.get("best_choice") or {}) for r in runs]
    if any(w.get("ranking") == "merge" for w in ways):
        notes.append("Best-choice's final list is a window-way merge sort of the pages' picks (ours, "
                     "`--best-choice-ranking merge`); the paper ranks the images \"based on response confidence\".")
    if any(not w for w in ways):
        notes.append("Best-choice ranking rule not recorded (runs before it was recorded ranked by our merge sort).")
    windows = sorted({r.get("window") for r in runs if r.get("window")})
    notes.append(f"Best-choice pages of {', '.join(map(str, windows)) or '?'} images and the confidence that ranks "
                 "them (each image's P(Image k), \"None\" included, in the turn that picked it) are our reading: the "
                 "paper gives neither the page size nor how confidence is computed.")
    if any(w.get("debias") == "rotate" for w in ways):
        notes.append("Best-choice confidences are averaged over each page's cyclic rotations to cancel the model's "
                     "position bias (ours; the paper does not mention position bias).")
    return notes


def _protocol_departures(results: list[dict]) -> list[str]:
    """A protocol other than the one the paper's table compares; trials scored by one checkpoint."""
    notes = []
    for r in results:
        want = _PAPER_PROTOCOL.get(r["dataset"])
        if want and r["protocol"] != want:
            notes.append(f"{DISPLAY[r['dataset']]} scored under `{r['protocol']}`; the paper's Table 2 compares its "
                         f"`{want}` setting (`--protocol {want}`).")
        # RegDB's trials and CUHK03 classic's splits each have their own training identities
        why = leak(r)
        if why:
            notes.append(f"{r['label']}, {len(r['trials'])} {r['protocol']} trials: {why}.")
    return sorted(set(notes), key=notes.index)


def task_tables(results: list[dict]) -> str:
    """The sec. 4.2 evaluations (``eval/run.py --task attribute|multimodal``), one table each."""
    out = []
    attr = [r for r in results if r.get("task") == "attribute"]
    if attr:
        out += ["**Attribute-based person retrieval** (sec. 4.2; %)\n",
                "| Methods | dataset | images (N) | attributes per query | queries | strategy | mAP | Rank-1 | "
                "R-precision | chance |", "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
        for r in attr:
            m = r["mean"]
            out.append(f"| {r['label']} | {_task_dataset(r)} | {r['sample']} | {r['query_attributes']} | "
                       f"{r['num_queries']} | {r['strategy']} | {_pct(m['mAP'])} | {_pct(m['rank1'])} | "
                       f"{_pct(m['r_precision'])} | {_pct(m['chance'])} |")
        out.append("")
    multi = [r for r in results if r.get("task") == "multimodal"]
    if multi:
        out += ["**Adaptive multi-modal retrieval** (sec. 4.2: image query with added text, against image alone; %)\n",
                "| Methods | dataset | protocol | query | added text | mAP | Rank-1 | mINP |",
                "|---|---|---|---|---|---:|---:|---:|"]
        for r in multi:
            a, b = r["mean"]["image"], r["mean"]["image_text"]
            where = f"| {r['label']} | {_task_dataset(r)} | {r['protocol']} |"
            out.append(f"{where} image | - | {_pct(a['mAP'])} | {_pct(a['rank1'])} | {_pct(a['mINP'])} |")
            out.append(f"{where} image + text | {', '.join(r['text'])} | {_pct(b['mAP'])} | {_pct(b['rank1'])} | "
                       f"{_pct(b['mINP'])} |")
            out.append(f"{where} change | | {100 * (b['mAP'] - a['mAP']):+.1f} | {100 * (b['rank1'] - a['rank1']):+.1f} | "
                       f"{100 * (b['mINP'] - a['mINP']):+.1f} |")
        out.append("")
    return "\n".join(out)


def _task_dataset(r: dict) -> str:
    return "SynthPeds" if r["dataset"] == "synthpeds" else DISPLAY.get(r["dataset"], r["dataset"])


def render(results: list[dict]) -> str:
    tasks = task_tables(results)
    results = [r for r in results if r.get("task", "reid") == "reid"]  # the paper's Tables 1-5
    if not results:
        return tasks
    parts = [paper_tables(results), tasks]
    if len({r["label"] for r in results}) > 1:
        parts.append(ablation_table(results))
    parts.append(provenance_table(results))
    notes = departures(results)
    parts.append("**Where this setup departs from the paper's**\n\n"
                 + ("\n".join(f"- {n}" for n in notes) if notes else "- nothing recorded: the paper's setup.") + "\n")
    return "\n".join(p for p in parts if p)


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


def _cut(r: dict) -> str:
    if r["protocol"] == "t2i" and not r.get("text_prefilter"):  # no image to pre-filter with
        return "whole gallery"
    top_k = r.get("top_k") or (r.get("text_head") if r.get("tau") is None else None)  # a caption's default head
    parts = ([f"top {top_k}"] if top_k else []) + ([f"tau {r['tau']}"] if r.get("tau") is not None else [])
    return " and ".join(parts) or "whole gallery"


def _full_trials(r: dict) -> int:
    """The trials the protocol averages over (recorded by eval/run.py with its options)."""
    return int(r.get("trials_of") or _FULL_TRIALS.get(r["protocol"], 1))


def _trials(r: dict) -> str:
    full = _full_trials(r)
    return f"{len(r['trials'])} of {full}" if full > 1 else str(len(r["trials"]))


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
                   f"{r.get('window') or '-'} | {_trials(r)} | {r['protocol']} | {_options(r)} |")
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
    if any(r["prefilter"] == "none" and r["protocol"] != "t2i" for r in results):
        notes.append("`--prefilter none`: the VLM scores the whole gallery, with no baseline filtering it first.")
    if any(r.get("top_k") and r.get("tau") is None and r["protocol"] != "t2i" for r in results):
        notes.append("The VLM scores the pre-filter's top k; the paper keeps the images above a similarity threshold tau.")
    if any(r["protocol"] == "t2i" and _cut(r) == "whole gallery" for r in results):
        notes.append("Text queries are not pre-filtered: the VLM scores the whole gallery for each caption.")
    short = sorted({f"{r['protocol']} ({_trials(r)})" for r in results if len(r["trials"]) < _full_trials(r)})
    if short:
        notes.append(f"Fewer trials than the protocol averages over: {', '.join(short)}.")
    untrained = sorted({r["label"] for r in results if (r.get("scoring") or {}).get("trained") is False})
    if untrained:
        notes.append(f"{', '.join(untrained)}: scored with a prompt the checkpoint's last stage did not train.")
    return notes


def render(results: list[dict]) -> str:
    parts = [paper_tables(results)]
    if len({r["label"] for r in results}) > 1:
        parts.append(ablation_table(results))
    parts.append(provenance_table(results))
    notes = departures(results)
    parts.append("**Where this setup departs from the paper's**\n\n"
                 + ("\n".join(f"- {n}" for n in notes) if notes else "- nothing recorded: the paper's setup.") + "\n")
    return "\n".join(p for p in parts if p)


"""Markdown tables in the layout of the paper's Tables 1-5 from ``eval/run.py`` result folders.

    python eval/table.py RESULTS_DIR [RESULTS_DIR ...] [--out table.md]

Every ``results.json`` under the given folders is one (model, benchmark) run. Tables 1, 2, 3 and 5
have one row per model and "mAP | Rank-1" per benchmark; Table 4 (the stage ablation) has one row
per checkpoint and the mAP of the ten benchmarks plus their average (over the benchmarks
present, which the header says when some are missing). Metrics are percentages, one decimal.
Runs on SynthPeds are reported in a table of their own, by protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks import DISPLAY, TABLE4_COLUMNS, TABLES  # noqa: E402


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
    out = ["**Table 4. Stage ablation** (mAP, %)" + note + "\n",
           "| Methods | " + " | ".join(_name(c) for c in cols) + f" | {avg} |",
           "|---|" + "---:|" * (len(cols) + 1)]
    for lab in labels:
        vals = [cells[(lab, c)]["mAP"] if (lab, c) in cells else None for c in cols]
        have = [v for v in vals if v is not None]
        mean = sum(have) / len(have) if len(have) == len(cols) else None  # no average of a partial row
        out.append(f"| {lab} | " + " | ".join(_pct(v) for v in vals) + f" | {_pct(mean)} |")
    return "\n".join(out) + "\n"


def render(results: list[dict]) -> str:
    parts = [paper_tables(results)]
    if len({r["label"] for r in results}) > 1:
        parts.append(ablation_table(results))
    return "\n".join(p for p in parts if p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", help="eval/run.py --out folders (or results.json files)")
    ap.add_argument("--out", help="also write the markdown here")
    args = ap.parse_args(argv)
    try:
        text = render(collect(args.dirs))
    except (ValueError, FileNotFoundError) as err:
        print(f"eval/table.py: error: {err}", file=sys.stderr)
        return 1
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

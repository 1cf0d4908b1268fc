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
import sys
from pathlib import Path

from chatreid.evaluation.tables import collect, render


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

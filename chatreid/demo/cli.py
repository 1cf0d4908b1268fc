"""``python -m chatreid.demo``: ``build`` (the demo model and its report), ``report`` (the
report again, from a finished build's summary) and ``ceilings`` (a world's ground-truth ceilings
and chance, ``chatreid.demo.ceilings``)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from chatreid.demo import __doc__ as DOC
from chatreid.demo.config import CONFIGS, LAYOUTS, DemoConfig, override
from chatreid.demo.driver import DEFAULT_OUT, DEFAULT_REPORT, DEFAULT_WORK, build, final_loss
from chatreid.demo.report import write_report
from chatreid.demo.separation import scored_pairs, yes_separation


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chatreid.demo", description=DOC.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the demo model and docs/demo-report.md")
    b.add_argument("--out", default=str(DEFAULT_OUT), help="where the demo model goes (default %(default)s)")
    b.add_argument("--config", choices=sorted(CONFIGS), default="full")
    b.add_argument("--work", default=str(DEFAULT_WORK), help="intermediate files (default %(default)s)")
    b.add_argument("--report", default=str(DEFAULT_REPORT), help="report path ('' for none)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--no-ablation", action="store_true", help="train only the 1+2+3 chain")
    b.add_argument("--reuse-pretraining", action="store_true",
                   help="take the pretrained base of the last build in --work if its pretraining had the same settings")
    b.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one DemoConfig field (VALUE is JSON; a stage's entry as steps.1=800); repeatable")
    r = sub.add_parser("report", help="re-render the report from a finished build's summary.json")
    r.add_argument("--work", default=str(DEFAULT_WORK))
    r.add_argument("--report", default=str(DEFAULT_REPORT))
    c = sub.add_parser("ceilings", help="ground-truth ceilings (body traits, clothes) and chance of a SynthPeds world")
    c.add_argument("--world", required=True, action="append",
                   help="a SynthPeds world folder (chatreid synth); repeatable")
    c.add_argument("--protocol", help="metric protocol (default: the layout's, e.g. cc for ltcc)")
    c.add_argument("--trials", type=int, help="SYSU: gallery trials to average over (default all 10)")
    args = ap.parse_args(argv)
    if args.cmd == "ceilings":
        from chatreid.demo.ceilings import ceilings_table, world_ceilings

        try:
            table = {Path(w).name: world_ceilings(w, args.protocol, args.trials) for w in args.world}
        except (ValueError, FileNotFoundError) as err:
            print(f"chatreid.demo ceilings: error: {err}", file=sys.stderr)
            return 2
        print(ceilings_table(table))
        return 0
    if args.cmd == "report":
        summary = json.loads((Path(args.work) / "summary.json").read_text())
        summary.setdefault("losses", {p.parent.name: final_loss(p)
                                      for p in sorted((Path(args.work) / "runs").glob("s*/final"))})
        if "separation" not in summary:
            cfg = DemoConfig(**summary["config"])
            roots = {l: Path(args.work) / "synth" / l for l in LAYOUTS}
            summary["separation"] = yes_separation(scored_pairs(Path(args.work), roots, cfg))
        write_report(summary, Path(args.report))
        return 0
    try:
        cfg = override(replace(CONFIGS[args.config], seed=args.seed, ablation=not args.no_ablation), args.set)
        build(cfg, Path(args.out), Path(args.work), Path(args.report) if args.report else None,
              reuse_pretraining=args.reuse_pretraining)
    except (RuntimeError, ValueError, FileNotFoundError) as err:
        print(f"chatreid.demo: error: {err}", file=sys.stderr)
        return 1
    return 0

"""``python -m chatreid.demo``: ``build`` (the demo model and its report), ``report`` (the
report again, from a finished build's summary), ``ceilings`` (a world's ground-truth ceilings
and chance, ``chatreid.demo.ceilings``) and ``attributes`` (a model's stage-1 attribute answers
on a world, ``chatreid.demo.attributes``). Every error is one line on stderr and exit status 2
(``chatreid.usage``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from chatreid.demo import __doc__ as DOC
from chatreid.demo.config import CONFIGS, LAYOUTS, DemoConfig, override
from chatreid.demo.driver import DEFAULT_OUT, DEFAULT_REPORT, DEFAULT_WORK, build, final_loss
from chatreid.demo.report import merge_seeds, write_report
from chatreid.demo.separation import scored_pairs, yes_separation
from chatreid.usage import ArgumentParser, user_error

PROG = "python -m chatreid.demo"


def _summary(work: str) -> dict:
    """A finished build's summary.json in ``work``."""
    file = Path(work) / "summary.json"
    if not file.is_file():
        raise FileNotFoundError(f"--work {work}: no summary.json here (a finished build writes it)")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: not valid JSON ({err.msg})") from None


def main(argv=None) -> int:
    ap = ArgumentParser(prog=PROG, description=DOC.split("\n\n")[0])
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
    r.add_argument("--seeds-from", action="append", default=[], metavar="WORK",
                   help="a build that reused --work's pretrained base with later stage seeds (--set stage_seed=K): "
                        "its chains join the report as further seeds; repeatable")
    c = sub.add_parser("ceilings", help="ground-truth ceilings (body traits, clothes) and chance of a SynthPeds world")
    c.add_argument("--world", required=True, action="append",
                   help="a SynthPeds world folder (chatreid synth); repeatable")
    c.add_argument("--protocol", help="metric protocol (default: the layout's, e.g. cc for ltcc)")
    c.add_argument("--trials", type=int, help="SYSU: gallery trials to average over (default all 10)")
    a = sub.add_parser("attributes", help="a model's stage-1 attribute answers on held-out images of a SynthPeds world")
    a.add_argument("--model", required=True, help="a model folder (e.g. models/chatreid-demo)")
    a.add_argument("--world", required=True, help="a SynthPeds world folder (chatreid synth) none of its build trained on")
    a.add_argument("--images", type=int, default=60, help="images asked (default %(default)s)")
    a.add_argument("--seed", type=int, default=0, help="which images (default %(default)s)")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except (RuntimeError, ValueError, KeyError, OSError) as err:
        return user_error(f"{PROG} {args.cmd}", err)


def _run(args) -> int:
    if args.cmd == "attributes":
        from chatreid.demo.attributes import attribute_accuracy, attributes_table

        if not (Path(args.model) / "config.json").is_file():
            raise FileNotFoundError(f"--model {args.model}: no model here (no config.json)")
        print(attributes_table(attribute_accuracy(args.model, args.world, n_images=args.images, seed=args.seed)))
        return 0
    if args.cmd == "ceilings":
        from chatreid.demo.ceilings import ceilings_table, world_ceilings

        print(ceilings_table({Path(w).name: world_ceilings(w, args.protocol, args.trials) for w in args.world}))
        return 0
    if args.cmd == "report":
        summary = _summary(args.work)
        if args.seeds_from:
            summary = merge_seeds(summary, [_summary(w) for w in args.seeds_from])
        summary.setdefault("losses", {p.parent.name: final_loss(p)
                                      for p in sorted((Path(args.work) / "runs").glob("s*/final"))})
        if "separation" not in summary:
            cfg = DemoConfig(**summary["config"])
            roots = {l: Path(args.work) / "synth" / l for l in LAYOUTS}
            summary["separation"] = yes_separation(scored_pairs(Path(args.work), roots, cfg))
        write_report(summary, Path(args.report))
        return 0
    cfg = override(replace(CONFIGS[args.config], seed=args.seed, ablation=not args.no_ablation), args.set)
    build(cfg, Path(args.out), Path(args.work), Path(args.report) if args.report else None,
          reuse_pretraining=args.reuse_pretraining)
    return 0

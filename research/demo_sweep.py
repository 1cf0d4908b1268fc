"""Which demo recipe learns? Several `python -m chatreid.demo build` variants side by side.

    python research/demo_sweep.py --variants default,long --out runs/demo_sweep      # one at a time
    python research/demo_sweep.py --variants all --parallel 8 --deadline 420 --out sweep/   # GPU machine
    python research/demo_sweep.py --list

Each variant is the ``full`` demo config with a few ``--set`` overrides (the table below), built
in its own work folder by its own process (``OMP_NUM_THREADS`` threads each; on a GPU machine every
process trains and evaluates on the GPU in fp32, so it learns what the CPU build learns, only
sooner). As each build finishes its summary is added to ``OUT/sweep.json`` and the table in
``OUT/sweep.md`` is rewritten, so a sweep stopped at its deadline keeps every finished variant.
A variant still running at the deadline is stopped and listed as unfinished.

The table: mAP (%) of the demo chain 1+2+3 (and, where the variant trains them, 2+3 and stage 3
alone) per layout, the pre-filter's mAP, on market the AUC of P(Yes) same vs other person and of the
model's own image features on the same pairs (see docs/demo-report.md), and the seconds taken.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = ("market", "ltcc", "sysu", "pedes")

NO_ABL = ["ablation=false", "diagnostic=false"]
VARIANTS = {
    # the full config as shipped, with its stage ablation
    "default": ["diagnostic=false"],
    # the previous session's recipe: 128x64 crops, 120 / 300 / 60 steps, cosine decay
    "old-recipe": ["max_pixels=8192", "steps.1=120", "steps.2=300", "steps.3=60", "schedule=cosine"] + NO_ABL,
    "res-128x64": ["max_pixels=8192"] + NO_ABL,
    "keep-decoder": ["stage2_decoder=stage1"] + NO_ABL,  # stage 2 keeps the stage-1 decoder
    "long": ["steps.1=1500", "steps.2=3000", "steps.3=300"] + NO_ABL,
    "lr-2e-3": ["lr.1=0.002", "lr.2=0.002"] + NO_ABL,
    "s3-long": ["steps.3=400", "lr.3=0.0005"] + NO_ABL,
    # the pairwise scorer's own task as most of stage 2
    "i2i-heavy": ['mix2=["i2i_one_to_one=0.7", "i2i_many_to_many=0.1", "t2i_one_to_one=0.1", '
                  '"attr_predict=0.1"]'] + NO_ABL,
}


def run_variant(name: str, sets: list[str], work: Path, threads: int, config: str = "full") -> subprocess.Popen:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "chatreid.demo", "build", "--config", config, "--work", str(folder / "work"),
            "--out", str(folder / "model"), "--report", str(folder / "report.md")]
    for s in sets:
        argv += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    log = open(folder / "log.txt", "w")
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def row(name: str, summary: dict | None) -> str:
    if summary is None:
        return f"| {name} | unfinished |" + " |" * 7
    res, sep = summary["results"], summary.get("separation", {})
    cells = []
    for layout in LAYOUTS:
        r = res.get(layout, {})
        vals = [r.get(k, {}).get("mAP") for k in ("1+2+3", "2+3", "3", "pre-filter")]
        cells.append(" / ".join("—" if v is None else f"{100 * v:.1f}" for v in vals))
    aucs = [d.get("market", {}).get("1+2+3", {}).get("auc") for d in (sep, summary.get("feature_separation", {}))]
    train = sum(v for k, v in summary["steps_s"].items() if k.startswith("train"))
    return (f"| {name} | " + " | ".join(cells) + "".join(f" | {'—' if a is None else f'{a:.2f}'}" for a in aucs)
            + f" | {train:.0f} | {summary['total_s']:.0f} |")


def write(out: Path, done: dict, pending: list[str]) -> None:
    head = ("| variant | " + " | ".join(f"{l} mAP 123 / 23 / 3 / pre" for l in LAYOUTS)
            + " | market P(Yes) AUC (123) | market feature AUC (123) | train s | total s |")
    lines = [head, "|---" * 9 + "|"] + [row(n, s) for n, s in done.items()] + [row(n, None) for n in pending]
    sets = "\n".join(f"- `{n}`: {' '.join(VARIANTS[n])}" for n in list(done) + pending)
    (out / "sweep.md").write_text("\n".join(lines) + "\n\n" + sets + "\n")
    (out / "sweep.json").write_text(json.dumps(done, indent=1, default=str))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="all", help="comma-separated names, or 'all'")
    ap.add_argument("--parallel", type=int, default=1, help="builds at a time (8 on a 16-core GPU machine)")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of each build")
    ap.add_argument("--deadline", type=float, default=None, help="seconds; unfinished builds are stopped")
    ap.add_argument("--out", default="runs/demo_sweep")
    ap.add_argument("--work", default=None, help="build folders (default: OUT/work)")
    ap.add_argument("--config", default="full", help="the demo config the overrides apply to ('small': a quick check)")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    if args.list:
        for n, s in VARIANTS.items():
            print(f"{n}: {' '.join(s)}")
        return 0
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else out / "work"
    t0 = time.time()
    queue, running, done = list(names), {}, {}
    while queue or running:
        while queue and len(running) < args.parallel:
            name = queue.pop(0)
            running[name] = run_variant(name, VARIANTS[name], work, args.threads, args.config)
            print(f"[sweep] {name} started", flush=True)
        time.sleep(2)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                summary = work / name / "work" / "summary.json"
                if proc.returncode == 0 and summary.is_file():
                    done[name] = json.loads(summary.read_text())
                print(f"[sweep] {name} finished (exit {proc.returncode}) at {time.time() - t0:.0f} s", flush=True)
                write(out, done, [n for n in names if n not in done])
        if args.deadline and time.time() - t0 > args.deadline:
            for name, proc in running.items():
                proc.kill()
                print(f"[sweep] {name} stopped at the deadline", flush=True)
            break
    write(out, done, [n for n in names if n not in done])
    print((out / "sweep.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the comparison pretraining still gain past its configured length? Continue a finished
build's pretrained base for more steps and follow the held-out AUC.

    python research/continue_pretraining.py --work runs/demo --out runs/demo_continued --steps 6000

``--work``: a folder of ``python -m chatreid.demo build --config ship`` (its ``base_pretrained/``,
``pretrain_store/`` and ``eval_store/``). The continuation is a fresh AdamW (the same warm-up and
constant rate), a new seed, and the curriculum from its first level (the pretrained base passes the
easy levels in their minimum 50 steps each), on the same pretraining worlds and measured on the same
held-out pairs as the build's curves. Writes ``OUT/base_pretrained/`` and ``OUT/continued.json``
(the curve). It is a diagnostic: a longer pretraining is shipped as a fresh one
(``--set pretrain_steps=N``), not as this continuation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, as the other research scripts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--config", default="ship")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=400)
    args = ap.parse_args(argv)

    from dataclasses import replace

    from chatreid.demo.config import CONFIGS
    from chatreid.demo.driver import heldout_probe, pretrain_base

    for need in ("base_pretrained", "pretrain_store", "eval_store"):
        if not (args.work / need).exists():
            raise SystemExit(f"{args.work / need} is missing: --work must be a finished demo build's folder")
    cfg = CONFIGS[args.config]
    probe = heldout_probe(cfg, args.work / "eval_store")  # the build's own held-out pairs (its seed)
    more = replace(cfg, pretrain_steps=args.steps, seed=args.seed, curve_every=max(1, args.eval_every // 2))
    _, result = pretrain_base(more, args.work / "base_pretrained", args.work / "pretrain_store", probe,
                              args.out / "base_pretrained")
    (args.out / "continued.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

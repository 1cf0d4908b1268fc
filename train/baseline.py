"""Train the Re-ID baseline that ChatReID uses as its pre-filter (paper section 4.1).

    python train/baseline.py --store stores/reid --backbone efficientnet_lite0 --out runs/baseline
    python train/baseline.py --dataset synthpeds:data/synth-market --image_size 128x64 --epochs 12 \
        --out runs/baseline-synth [--push_to_hub --hub_model_id me/chatreid-baseline]
    python eval/run.py --prefilter runs/baseline ...     # then use it

The "bag of tricks" recipe (chatreid/baseline/train.py): ID loss with label smoothing + batch-hard
triplet loss, BNNeck, PK sampling, random erasing, warm-up. The folder holds config.json,
model.safetensors, README.md (model card) and training_log.json; it is written beside --out and
renamed into place when complete. A push happens after the local save; a failed push keeps it.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def cli(argv=None) -> int:
    from transformers import HfArgumentParser

    from chatreid.baseline.train import BaselineArguments, push, train
    from chatreid.hub import PushError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    (args,) = HfArgumentParser(BaselineArguments).parse_args_into_dataclasses(args=argv)
    try:
        result = train(args)
    except (ValueError, OSError) as err:  # user errors: one line, no traceback
        print(f"train/baseline.py: error: {err}", file=sys.stderr, flush=True)
        return 2
    last = result.history[-1] if result.history else {}
    print(f"baseline: {result.num_images} images of {result.num_ids} identities, {len(result.history)} epochs in "
          f"{result.seconds:.0f} s (final loss {last.get('loss')}); saved to {result.out}", flush=True)
    if args.push_to_hub:
        try:
            push(result.out, args)
        except PushError as err:
            print(f"push failed; the baseline is kept at {result.out} ({err})", file=sys.stderr, flush=True)
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(cli())

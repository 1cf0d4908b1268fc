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

import os
import sys

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def cli(argv=None) -> int:
    from chatreid.baseline.cli import run
    from chatreid.baseline.train import BaselineArguments, train

    def summary(result):
        last = result.history[-1] if result.history else {}
        return (f"baseline: {result.num_images} images of {result.num_ids} identities, {len(result.history)} epochs "
                f"in {result.seconds:.0f} s (final loss {last.get('loss')}); saved to {result.out}", result.out)

    return run("train/baseline.py", BaselineArguments, train, summary, "baseline", "ChatReID Re-ID baseline", argv)


if __name__ == "__main__":
    sys.exit(cli())

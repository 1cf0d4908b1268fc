"""Train the text-to-image pre-filter: a dual encoder over a Re-ID baseline and the captions.

    python train/text_prefilter.py --baseline runs/baseline-pedes --dataset synthpeds:data/synth-pedes \
        --out runs/text-prefilter [--push_to_hub --hub_model_id me/chatreid-text-prefilter]
    python eval/run.py --protocol t2i --prefilter runs/text-prefilter --top-k 50 ...

Trains on the train split's captions (chatreid/baseline/text.py), reports recall@k of the held-out
captioned images, and writes the folder (with the baseline inside) beside --out, renamed into place.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def cli(argv=None) -> int:
    from chatreid.baseline.cli import run
    from chatreid.baseline.text import TextPrefilterArguments, train_text_prefilter

    def summary(report):
        return json.dumps({k: v for k, v in report.items() if k != "history"}, indent=1), report["out"]

    return run("train/text_prefilter.py", TextPrefilterArguments, train_text_prefilter, summary, "pre-filter",
               "ChatReID text-to-image pre-filter", argv)


if __name__ == "__main__":
    sys.exit(cli())

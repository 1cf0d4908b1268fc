"""Train the text-to-image pre-filter: a dual encoder over a Re-ID baseline and the captions.

    python train/text_prefilter.py --baseline runs/baseline-pedes --dataset synthpeds:data/synth-pedes \
        --out runs/text-prefilter [--push_to_hub --hub_model_id me/chatreid-text-prefilter]
    python eval/run.py --protocol t2i --prefilter runs/text-prefilter --top-k 50 ...

Trains on the train split's captions (chatreid/baseline/text.py), reports recall@k of the held-out
captioned images, and writes the folder (with the baseline inside) beside --out, renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import sys

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def cli(argv=None) -> int:
    from transformers import HfArgumentParser

    from chatreid.baseline.text import TextPrefilterArguments, train_text_prefilter
    from chatreid.hub import PushError, push_folder

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    (args,) = HfArgumentParser(TextPrefilterArguments).parse_args_into_dataclasses(args=argv)
    try:
        report = train_text_prefilter(args)
    except (ValueError, OSError) as err:  # user errors: one line, no traceback
        print(f"train/text_prefilter.py: error: {err}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=1), flush=True)
    if args.push_to_hub:
        repo_id = args.hub_model_id or os.path.basename(os.path.abspath(args.out))
        try:
            push_folder(report["out"], repo_id, what="pre-filter", private=args.hub_private_repo,
                        token=args.hub_token, commit_message="ChatReID text-to-image pre-filter")
        except PushError as err:
            print(f"push failed; the pre-filter is kept at {report['out']} ({err})", file=sys.stderr, flush=True)
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(cli())

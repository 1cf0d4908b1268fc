"""Hierarchical progressive tuning of Qwen2-VL for person Re-ID (ChatReID, paper section 3.3).

    accelerate launch train/sft.py --stage 1 --config train/configs/stage1.yaml
    accelerate launch train/sft.py --stage 2 --config train/configs/stage2.yaml \
        --previous_stage_checkpoint runs/stage1
    accelerate launch train/sft.py --stage 3 --config train/configs/stage3.yaml \
        --previous_stage_checkpoint runs/stage2 [--push_to_hub --hub_model_id me/chatreid-stage3]

Stage 1 tunes the whole pretrained VLM on attribute captions; stage 2 puts the stage-1 vision
encoder into a fresh pretrained decoder and tunes it all on the seven retrieval tasks; stage 3 tunes
the stage-2 model with the vision encoder frozen on the Re-ID prompts (chatreid/model/surgery.py).
Rows reference images by id; the collator fetches them from the image store and applies the stage's
resolution policy (chatreid/training/). SFTTrainer does the loop; the run itself (loading, surgery,
trainer, final save, card, push) is chatreid/training/sft.py. Any option of the YAML can be
overridden on the command line; `--resume_from_checkpoint last` continues an interrupted run.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from trl import ModelConfig, SFTConfig, TrlParser  # noqa: E402

from chatreid.usage import dataclass_parser  # noqa: E402
from chatreid.training import sft  # noqa: E402
from chatreid.training.sft import ScriptArguments  # noqa: E402


def cli(argv=None, callbacks=None) -> int:
    """``callbacks``: extra ``transformers.TrainerCallback``s, for callers that run the script in
    their own process (benchmarks time each step this way)."""
    parser = dataclass_parser(TrlParser, (ScriptArguments, SFTConfig, ModelConfig), prog="train/sft.py")
    return sft.cli(argv, callbacks, parser=parser)


if __name__ == "__main__":
    sys.exit(cli())

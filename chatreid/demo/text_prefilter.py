"""The text-to-image pre-filter the demo model ships with, in its ``text-prefilter/`` subfolder.

Text queries have no photo for the image pre-filter, so the demo model carries a dual encoder
(``chatreid.baseline.text``) that ranks a gallery for a caption; the VLM then re-ranks its head.
``make_text_prefilter`` trains it the way docs/benchmarks.md ("Text-to-image pre-filter") does,
on a pedes world of its own (``chatreid.demo.driver.WORLD_SEEDS["text_prefilter"]``): a Re-ID
baseline (``train/baseline.py``'s recipe, 128x64, a few hundred steps), then the dual encoder over
it (``train/text_prefilter.py``). ``compact`` then stores the weights in half precision and drops
the baseline's ID classifier (training alone reads it), about halving the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from chatreid.baseline.model import CONFIG, WEIGHTS
from chatreid.baseline.text import IMAGE_ENCODER

# The head the VLM re-ranks by default: the smallest reported k whose recall on the pre-filter's
# own held-out identities reaches this share (chosen on its training world, never on evaluation).
HEAD_RECALL = 0.95


def head_size(report: dict) -> int | None:
    """The smallest k with held-out recall@k >= HEAD_RECALL; None (the whole gallery) if none does."""
    recall = (report.get("held_out") or {}).get("recall") or {}
    ks = [int(k) for k, r in recall.items() if r >= HEAD_RECALL]
    return min(ks) if ks else None


def compact(folder: Path) -> None:
    """Rewrite the folder's weights (its own and ``image_encoder/``'s) with every weight matrix in
    float16 (norm statistics and biases stay float32) and without the baseline's ID classifier."""
    from safetensors.torch import load_file, save_file

    for f in (folder / WEIGHTS, folder / IMAGE_ENCODER / WEIGHTS):
        state = {k: v for k, v in load_file(str(f)).items() if k != "classifier.weight"}
        state = {k: v.half() if v.is_floating_point() and v.dim() >= 2 else v for k, v in state.items()}
        save_file(state, str(f), metadata={"format": "pt"})


def make_text_prefilter(root: Path, work: Path, epochs: int = 11, seed: int = 0) -> dict:
    """Train the baseline and the dual encoder on the pedes world at ``root`` (its train split;
    its held-out identities measure it) and compact it, into ``work/text_prefilter`` (which
    ``chatreid.demo.driver.install`` copies into the model folder). Returns the text pre-filter's
    report (held-out recall@k, the head, timings, ``folder``)."""
    from chatreid.baseline.text import TextPrefilterArguments, train_text_prefilter
    from chatreid.baseline.train import BaselineArguments, train

    dataset = f"synthpeds:{root}"
    baseline = Path(work) / "text_prefilter_baseline"
    # docs/benchmarks.md's pedes recipe: 128x64 (the worlds' crop size), P=16 x K=4, lr x0.1 at
    # 60% and 85% of the epochs
    result = train(BaselineArguments(out=str(baseline), dataset=dataset, image_size="128x64", epochs=epochs,
                                     warmup_epochs=1, milestones=f"{0.6 * epochs:.1f},{0.85 * epochs:.1f}",
                                     seed=seed), progress=False)
    staged = Path(work) / "text_prefilter"
    report = train_text_prefilter(TextPrefilterArguments(baseline=str(baseline), dataset=dataset, out=str(staged),
                                                         seed=seed), progress=False)
    compact(staged)
    head = head_size(report)
    config = json.loads((staged / CONFIG).read_text())
    config["head"] = head
    config["report"]["baseline_seconds"] = round(result.seconds, 1)
    (staged / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    with (staged / "README.md").open("a") as f:
        f.write(f"\nThe VLM re-ranks the top {head} by default (`head` in config.json: the smallest k above "
                f"with recall@k >= {HEAD_RECALL:.0%}); weights stored in float16, the baseline's ID "
                "classifier left out.\n")
    summary = {k: v for k, v in report.items() if k != "history"}
    return {**summary, "head": head, "baseline_seconds": round(result.seconds, 1),
            "baseline_steps": result.history[-1]["step"] if result.history else 0, "folder": str(staged)}

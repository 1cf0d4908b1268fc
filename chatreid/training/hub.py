"""Exporting a stage: atomic save of the final model and its model card (the push is ``chatreid.hub.push_folder``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from chatreid.atomic import building

STAGE_NAMES = {1: "person attribute understanding", 2: "fine-grained image retrieval",
               3: "multi-modal task reasoning"}


def save_atomically(model, processor, out_dir: str | os.PathLike, card: str | None = None,
                    state_dict: dict | None = None) -> Path:
    """Write model + processor (+ README.md) to a temporary sibling, then rename it into place.
    ``state_dict``: the full weights when the model itself holds only a shard (ZeRO-3, FSDP).

    A crash while saving leaves the previous ``out_dir`` (if any) intact: the old folder is moved
    aside only after the new one is complete, and removed only after the swap.
    """
    with building(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        processor.save_pretrained(tmp)
        if card is not None:
            (tmp / "README.md").write_text(card)
    return Path(out_dir)


def model_card(*, stage: int, base: str, previous: str | None, dataset: str, store: str, repo_id: str | None,
               hyperparameters: dict, train_loss: float | None, eval_metrics: dict | None, trainable: dict,
               lora: dict | None, tasks: list[str] | None = None, trials: dict | None = None) -> str:
    """The README.md of a stage checkpoint: Hub front matter, provenance, settings, results."""
    front = ["---", "library_name: transformers", "pipeline_tag: image-text-to-text", f"base_model: {base}",
             "tags:", "- chatreid", "- person-re-identification", "- trl", "- sft", f"- stage-{stage}"]
    if dataset and "/" in dataset and not os.path.exists(dataset):
        front += ["datasets:", f"- {dataset}"]
    front.append("---")
    lines = front + [
        "", f"# ChatReID stage {stage}: {STAGE_NAMES.get(stage, '')}", "",
        "Hierarchical progressive tuning of Qwen2-VL for person re-identification (ChatReID, Niu et al. 2025), "
        "trained with `train/sft.py` of the ChatReID project.", "",
        "## Provenance", "",
        f"- stage: {stage}", f"- base model: `{base}`",
        f"- started from: `{previous or base}`",
        f"- instruction data: `{dataset}`", f"- image store: `{store}`",
        f"- tasks trained in this stage: {', '.join(f'`{t}`' for t in tasks) if tasks else 'not recorded'}",
        "- identity splits trained on (RegDB trial, CUHK03 classic split; score only these): "
        + ("not recorded" if trials is None else ", ".join(f"{d} {v}" for d, v in trials.items()) or "none"), "",
        "## Trained parts", "", "| part | trainable | parameters |", "|---|---|---|",
    ]
    lines += [f"| {part} | {t:,} | {n:,} |" for part, (t, n) in trainable.items()]
    if lora:
        lines += ["", f"LoRA (merged into these weights): `{json.dumps(lora, default=str)}`"]
    lines += ["", "## Hyper-parameters", "", "```json", json.dumps(hyperparameters, indent=2, default=str), "```",
              "", "## Results", "", f"- training loss (final logged): {train_loss if train_loss is not None else 'n/a'}"]
    if eval_metrics:
        lines += [f"- {k}: {v}" for k, v in sorted(eval_metrics.items())]
    else:
        lines.append("- evaluation: not run")
    return "\n".join(lines) + "\n"

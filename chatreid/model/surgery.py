"""Stage surgery for hierarchical progressive tuning (paper section 3.3).

Every model has three parts: the vision encoder, the merger(s) that bridge it into the decoder,
and the decoder (token embeddings and output head included). Which parameter belongs to which is
the model family's fact (``Family.part_of``; Qwen2-VL's module names are in
``chatreid/model/families/qwen2_vl.py``, Qwen3-VL's DeepStack mergers count as mergers).

Where the merger goes, step by step, and why:

* Stage 1 (full tuning from the pretrained VLM): the merger comes with the pretrained VLM and is
  trained together with encoder and decoder.
* Stage 2 (stage-1 encoder + a fresh decoder from the pretrained base): the merger goes **with the
  stage-1 encoder** by default (``merger_from="stage1"``). Its input is the encoder's output, which
  stage 1 moved; its output space is the decoder's embedding space, which the fresh decoder shares
  with the stage-1 decoder (both started from the same base, and stage 1 changes embeddings least).
  The base merger would read stage-1 features it was never trained on. ``merger_from="base"`` is
  offered for ablation. Stage 2 is full tuning either way, so the bridge re-aligns.
* Stage 3 (stage-2 model, encoder frozen): the merger stays in place and, by default, **trainable**
  (``freeze_merger=False``). The paper freezes "the encoder"; the merger is the bridge, part of
  neither the ViT nor the LLM, and letting it move lets the decoder's instruction tuning adjust the
  interface at a cost of ~1% of the parameters. ``freeze_merger=True`` freezes the whole visual tower.

Every function returns an ordinary transformers model of its family;
each stage's checkpoint is a full checkpoint (LoRA adapters are merged before saving), so the next
stage always starts from plain weights.
"""

from __future__ import annotations

import gc

import torch

from chatreid.model.families import QWEN2_VL, family_of
from chatreid.model.loading import DEFAULT_MODEL, load_model

PARTS = ("vision_encoder", "merger", "decoder")


def part_of(param_name: str, family=QWEN2_VL) -> str:
    """Which part a parameter belongs to: ``vision_encoder``, ``merger`` or ``decoder``.

    ``family``: a family or a model (default Qwen2-VL, whose rule also reads the names in its
    saved Hub checkpoints); peft-wrapped names (``base_model.model.``) are accepted.
    """
    if not hasattr(family, "part_of"):
        family = family_of(family)
    return family.part_of(param_name)


def trainable_summary(model) -> dict[str, tuple[int, int]]:
    """``{part: (trainable parameters, all parameters)}``; for logs, model cards and tests."""
    out = {part: [0, 0] for part in PARTS}
    family = family_of(model)
    for name, param in model.named_parameters():
        part = family.part_of(name)
        out[part][1] += param.numel()
        if param.requires_grad:
            out[part][0] += param.numel()
    return {k: (v[0], v[1]) for k, v in out.items()}


def set_trainable(model, *, vision_encoder: bool = True, merger: bool = True, decoder: bool = True):
    """Set ``requires_grad`` per part; returns the model."""
    wanted = {"vision_encoder": vision_encoder, "merger": merger, "decoder": decoder}
    family = family_of(model)
    for name, param in model.named_parameters():
        param.requires_grad_(wanted[family.part_of(name)])
    return model


def stage1_model(base: str = DEFAULT_MODEL, **load_kwargs):
    """Stage 1: the pretrained VLM, every part trainable (full tuning)."""
    return set_trainable(load_model(base, **load_kwargs))


def _check_same_vision(a, b, what: str) -> None:
    va, vb = a.config.vision_config.to_dict(), b.config.vision_config.to_dict()
    diff = [k for k in family_of(a).vision_config_keys if va.get(k) != vb.get(k)]
    if diff or a.config.model_type != b.config.model_type:
        raise ValueError(f"{what}: the vision encoders differ in {diff or ['model_type']}; "
                         f"stage 2 needs the stage-1 checkpoint and the base to share an architecture")


def stage2_model(stage1: str, base: str = DEFAULT_MODEL, *, merger_from: str = "stage1", **load_kwargs):
    """Stage 2: the stage-1 vision encoder in a fresh copy of the pretrained base; all trainable.

    ``merger_from``: ``"stage1"`` (default: the merger travels with the encoder it was tuned
    with) or ``"base"`` (the base's merger). See the module docstring for why.
    """
    if merger_from not in ("stage1", "base"):
        raise ValueError(f"merger_from must be 'stage1' or 'base', not {merger_from!r}")
    model = load_model(base, **load_kwargs)
    tuned = load_model(stage1, **load_kwargs)
    _check_same_vision(model, tuned, f"stage-1 checkpoint {stage1!r} vs base {base!r}")
    family = family_of(model)
    tower = family.vision_tower(model)
    keep = {k: v for k, v in family.vision_tower(tuned).state_dict().items()
            if merger_from == "stage1" or not family.is_merger_key(k)}
    missing, unexpected = tower.load_state_dict(keep, strict=False)
    expected_missing = [] if merger_from == "stage1" else [k for k in tower.state_dict() if family.is_merger_key(k)]
    if unexpected or sorted(missing) != sorted(expected_missing):
        raise RuntimeError(f"vision transplant mismatch: missing {missing}, unexpected {unexpected}")
    del tuned
    gc.collect()
    return set_trainable(model)


def stage3_model(stage2: str, *, freeze_merger: bool = False, **load_kwargs):
    """Stage 3: the stage-2 model as saved, the vision encoder frozen (the merger too if asked)."""
    model = load_model(stage2, **load_kwargs)
    return set_trainable(model, vision_encoder=False, merger=not freeze_merger, decoder=True)


def frozen_parts(stage: int, *, freeze_merger: bool = False) -> set[str]:
    """The parts a stage keeps frozen: nothing in stages 1-2; the encoder (and maybe merger) in 3."""
    if stage == 3:
        return {"vision_encoder", "merger"} if freeze_merger else {"vision_encoder"}
    return set()


def prepare_stage_model(stage: int, *, base: str = DEFAULT_MODEL, previous: str | None = None,
                        merger_from: str = "stage1", freeze_merger: bool = False, **load_kwargs):
    """The model a stage starts from: dispatches to :func:`stage1_model` / 2 / 3."""
    if stage == 1:
        return stage1_model(base, **load_kwargs)
    if previous is None:
        raise ValueError(f"stage {stage} needs the stage-{stage - 1} checkpoint (previous_stage_checkpoint)")
    if stage == 2:
        return stage2_model(previous, base, merger_from=merger_from, **load_kwargs)
    if stage == 3:
        return stage3_model(previous, freeze_merger=freeze_merger, **load_kwargs)
    raise ValueError(f"stage must be 1, 2 or 3, not {stage!r}")


@torch.no_grad()
def state_dict_of(model, part: str) -> dict[str, torch.Tensor]:
    """Copies of one part's parameters, keyed by full name (for tests and checks)."""
    family = family_of(model)
    return {n: p.detach().clone() for n, p in model.named_parameters() if family.part_of(n) == part}

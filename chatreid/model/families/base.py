"""The family interface: what ChatReID needs to know about a VLM family, and the registry.

A family is a :class:`Family` instance registered under its ``config.model_type``. The rest of
the project asks ``family_of(model)`` (or of a config or a processor) and uses only the methods
below, never a family's classes or module paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

_REGISTRY: dict[str, "Family"] = {}


class Family:
    """Facts and code of one VLM family. Subclasses fill in every attribute and method."""

    model_type: str = ""
    name: str = ""              # for people: "Qwen2-VL"
    hub_example: str = ""       # a Hub id of a checkpoint of this family
    image_token: str = ""       # the placeholder the processor expands into one token per embedding
    chat_template: str = ""     # used for checkpoints built here (tiny models); Hub checkpoints ship theirs
    # stage surgery: parameter-name prefixes of the parts, as transformers names them in memory
    vision_prefix: str = ""                 # the vision tower (encoder and mergers)
    merger_modules: tuple[str, ...] = ()    # the tower's submodules that bridge into the decoder
    decoder_prefixes: tuple[str, ...] = ()  # the language model and the output head
    vision_config_keys: tuple[str, ...] = ()  # vision config fields two checkpoints must share to swap towers

    # classes (imported lazily: transformers' model modules are heavy)
    def config_class(self): raise NotImplementedError
    def model_class(self): raise NotImplementedError
    def processor_class(self): raise NotImplementedError

    # modules
    def vision_tower(self, model): raise NotImplementedError
    def language_model(self, model): raise NotImplementedError

    def part_of(self, param_name: str) -> str:
        """``vision_encoder``, ``merger`` or ``decoder`` for a parameter name (a peft wrapper's too)."""
        name = param_name.removeprefix("base_model.model.")
        if any(name.startswith(self.vision_prefix + m) for m in self.merger_modules):
            return "merger"
        if name.startswith(self.vision_prefix):
            return "vision_encoder"
        if name.startswith(self.decoder_prefixes):
            return "decoder"
        raise ValueError(f"parameter {param_name!r} is in no known part of a {self.name} model")

    def is_merger_key(self, tower_key: str) -> bool:
        """Whether a key of the vision tower's own state dict belongs to a merger."""
        return tower_key.startswith(self.merger_modules)

    def lora_targets(self, frozen: set[str]) -> str:
        """A regex over the linear layers of the trainable parts (LoRA mirrors full tuning)."""
        raise NotImplementedError

    # images
    def pixel_values(self, image_processor, images: Sequence, targets: Sequence | None = None):
        """``(pixel_values, image_grid_thw)`` of PIL images, equal to the image processor's (fast path)."""
        raise NotImplementedError

    def stock_pixel_values(self, image_processor, images: Sequence):
        """The image processor's own ``(pixel_values, image_grid_thw)`` (the reference path)."""
        out = image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        return out["pixel_values"], out["image_grid_thw"]

    def encode_images(self, model, image_processor, images: Sequence) -> list[tuple]:
        """Per image: ``(merged embeddings (n, hidden), grid_thw (3,), extras)``; ``extras`` is
        whatever :meth:`lm_inputs` needs besides the embeddings (``None`` for most families)."""
        raise NotImplementedError

    def processed_size(self, image_processor, width: int, height: int) -> tuple[int, int]:
        raise NotImplementedError

    def encoded_tokens(self, image_processor, width: int, height: int) -> int:
        raise NotImplementedError

    def image_token_id(self, tokenizer) -> int:
        return tokenizer.convert_tokens_to_ids(self.image_token)

    # the language model's inputs
    def positions(self, ids, mask, grids: Sequence[Sequence[tuple[int, int, int]]], merge: int, image_token_id: int):
        """Position ids of right-padded token rows (``grids``: each row's images' (t, h, w))."""
        raise NotImplementedError

    def lm_inputs(self, ids, image_token_id: int, extras: Sequence) -> dict:
        """Extra keyword arguments of the language model for the image tokens in ``ids``
        (their ``extras``, in order); ``{}`` for families whose images are only embeddings."""
        return {}

    # speed and tests
    def enable_fast_attention(self, model) -> int:
        return 0

    def tiny_config(self, tokenizer, **overrides): raise NotImplementedError

    def build_tiny(self, out_dir: str | os.PathLike, seed: int = 0) -> Path: raise NotImplementedError

    def __repr__(self) -> str:
        return f"<family {self.name} ({self.model_type})>"


def register(family: Family) -> Family:
    _REGISTRY[family.model_type] = family
    return family


def supported_model_types() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def family_for(model_type: str) -> Family:
    """The family registered for ``model_type``; ValueError naming the supported ones otherwise."""
    try:
        return _REGISTRY[model_type]
    except KeyError:
        raise ValueError(f"{model_type!r} models are not supported; ChatReID supports "
                         f"{', '.join(_REGISTRY)}") from None


def family_of(obj) -> Family:
    """The family of a model, a config, a processor made here, or a ``model_type`` string."""
    if isinstance(obj, str):
        return family_for(obj)
    model_type = (getattr(obj, "chatreid_model_type", None) or getattr(obj, "model_type", None)
                  or getattr(getattr(obj, "config", None), "model_type", None))
    if model_type is None:
        raise ValueError(f"cannot tell the model family of {type(obj).__name__}")
    return family_for(model_type)

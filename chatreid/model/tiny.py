"""Tiny random checkpoints for tests and demos (Qwen2-VL by default), built locally in about a second.

It is saved exactly like a real checkpoint (``config.json``, ``model.safetensors``, tokenizer
files, ``preprocessor_config.json``, ``processor_config.json``, ``chat_template.jinja``) and loaded
through the same :func:`chatreid.model.load_model_and_processor` as ``Qwen/Qwen2-VL-2B-Instruct``,
so every code path the tests exercise is the one users run.

What is tiny: 2 decoder layers of width 64, a 2-block vision encoder, a ~2,000-token byte-level
BPE vocabulary. What is real: Qwen2-VL's architecture (M-RoPE, 14x14 patches, 2x2 merger), its
14 special tokens in Qwen's order, its pre-tokenizer regex and its chat template.
"""

from __future__ import annotations

import os
from pathlib import Path

from chatreid.model.families import qwen_tokenizer
from chatreid.model.families.qwen2_vl import QWEN2_VL, QWEN2_VL_CHAT_TEMPLATE
from chatreid.model.families.qwen_tokenizer import QWEN2_VL_SPECIAL_TOKENS  # noqa: F401  (tests read it here)

def build_tiny_tokenizer(vocab_size: int = 2048, seed: int = 0):
    """The tiny tokenizer (``chatreid.model.families.qwen_tokenizer``) with Qwen2-VL's chat template."""
    tok = qwen_tokenizer.build_tiny_tokenizer(vocab_size=vocab_size, seed=seed)
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tok


def tiny_qwen2vl_config(tokenizer, **overrides):
    """A tiny Qwen2-VL config consistent with ``tokenizer`` (``QWEN2_VL.tiny_config``)."""
    return QWEN2_VL.tiny_config(tokenizer, **overrides)


def build_tiny_qwen2vl(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Build, save and return ``out_dir``: a random tiny Qwen2-VL checkpoint, deterministic in ``seed``.

    Load it with ``chatreid.model.load_model_and_processor(out_dir)``. Other families:
    ``chatreid.model.build_tiny(model_type, out_dir)``.
    """
    return QWEN2_VL.build_tiny(out_dir, seed=seed)


def build_tiny(model_type: str, out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """A random tiny checkpoint of the family registered for ``model_type``."""
    from chatreid.model.families import family_for

    return family_for(model_type).build_tiny(out_dir, seed=seed)

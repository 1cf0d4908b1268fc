"""Load a checkpoint of a supported VLM family and its processor, with or without torchvision.

One code path for every checkpoint: a Hub id (``Qwen/Qwen2-VL-2B-Instruct``, the default), a
local folder saved by ``save_pretrained``, or the tiny test model of :mod:`chatreid.model.tiny`.

Each family (``chatreid.model.families``: Qwen2-VL, Qwen2.5-VL, Qwen3-VL) brings a processor
that works without torchvision (the stock ones always build a video processor, which needs it);
the family is found by the checkpoint's ``config.model_type``. Image inputs only (one or many per
sample). Other architectures load only with ``trust_remote_code=True``, at the caller's risk.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

from chatreid.hub import check_local, offline
from chatreid.model.families import QWEN2_VL, family_for, supported_model_types
from chatreid.model.families.qwen2_vl import ChatReIDQwen2VLProcessor

DEFAULT_MODEL = QWEN2_VL.hub_example
SUPPORTED_MODEL_TYPES = supported_model_types()


def has_torchvision() -> bool:
    """True when torchvision imports (GPU machines); the CPU torch wheel here has a broken one."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return False
    return True


def _register() -> None:
    """Let ``AutoProcessor.from_pretrained`` resolve checkpoints saved with our processor.

    Saved checkpoints name the family's processor (``ChatReIDQwen2VLProcessor``, ...) in
    ``processor_config.json``. Without torchvision we register it as the processor of its family's
    config (the stock one cannot be built anyway); with torchvision nothing is overridden and
    transformers falls back to the stock processor by model type, which reads the same files.
    """
    if has_torchvision():
        return
    for model_type in supported_model_types():
        family = family_for(model_type)
        AutoProcessor.register(family.config_class(), family.processor_class(), exist_ok=True)


_register()


def _hub_kwargs(revision: str | None, token: str | bool | None) -> dict:
    kwargs = {}
    if revision is not None:
        kwargs["revision"] = revision
    if token is not None:
        kwargs["token"] = token
    return kwargs


def _explain_missing(name_or_path: str, err: Exception) -> OSError:
    """One clear line for the commonest failure: a Hub id that is not cached while offline."""
    if not Path(name_or_path).exists() and offline():
        return OSError(
            f"cannot load {name_or_path!r}: it is not a local folder, and HF_HUB_OFFLINE=1 forbids "
            f"downloading it (and it is not in the cache). Pass a local path, e.g. one made by "
            f"chatreid.model.tiny.build_tiny_qwen2vl(), or unset HF_HUB_OFFLINE. ({type(err).__name__})"
        )
    return OSError(f"cannot load {name_or_path!r}: {err}")


def load_processor(
    name_or_path: str = DEFAULT_MODEL,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
):
    """The processor of a checkpoint: PIL image processor + tokenizer + chat template.

    ``min_pixels`` / ``max_pixels`` bound the image processor's resize (Qwen's ``smart_resize``);
    the training collator resizes to the stage's policy first, so these rarely matter there.
    """
    check_local(name_or_path, "model")  # a mistyped path fails here, before any Hub request
    hub = _hub_kwargs(revision, token)
    try:
        family = family_for(AutoConfig.from_pretrained(name_or_path, **hub).model_type)
        # AutoImageProcessor inside picks the PIL backend when torchvision is missing (same outputs)
        processor = family.processor_class().from_pretrained(name_or_path, **hub)
    except (OSError, ValueError) as err:
        raise _explain_missing(name_or_path, err) from err
    if min_pixels is not None:
        processor.image_processor.size["shortest_edge"] = int(min_pixels)
    if max_pixels is not None:
        processor.image_processor.size["longest_edge"] = int(max_pixels)
    if processor.chat_template is None and getattr(processor.tokenizer, "chat_template", None):
        processor.chat_template = processor.tokenizer.chat_template
    if processor.tokenizer.pad_token is None:  # batches need one; Qwen's is <|endoftext|>
        processor.tokenizer.pad_token = "<|endoftext|>"
    return processor


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    *,
    dtype="auto",
    device_map=None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    token: str | bool | None = None,
    **model_kwargs,
):
    """The model of a checkpoint, from safetensors only (no pickled ``.bin`` files are read)."""
    check_local(name_or_path, "model")  # a mistyped path fails here, before any Hub request
    hub = _hub_kwargs(revision, token)
    try:
        config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **hub)
    except (OSError, ValueError) as err:
        raise _explain_missing(name_or_path, err) from err
    if config.model_type not in SUPPORTED_MODEL_TYPES and not trust_remote_code:
        raise ValueError(
            f"{name_or_path!r} is a {config.model_type!r} model; ChatReID supports "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (pass trust_remote_code=True to try another at your own risk)"
        )
    kwargs = dict(dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code, **hub, **model_kwargs)
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        return AutoModelForImageTextToText.from_pretrained(name_or_path, config=config, **kwargs)
    except OSError as err:
        raise _explain_missing(name_or_path, err) from err


def load_model_and_processor(
    name_or_path: str = DEFAULT_MODEL,
    *,
    dtype="auto",
    device_map=None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    token: str | bool | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    **model_kwargs,
):
    """``(model, processor)`` for a Hub id or a local path; see the module docstring."""
    model = load_model(
        name_or_path, dtype=dtype, device_map=device_map, attn_implementation=attn_implementation,
        trust_remote_code=trust_remote_code, revision=revision, token=token, **model_kwargs,
    )
    processor = load_processor(name_or_path, min_pixels=min_pixels, max_pixels=max_pixels, revision=revision, token=token)
    return model, processor

"""Load a Qwen2-VL (or Qwen2.5-VL) checkpoint and its processor, with or without torchvision.

One code path for every checkpoint: a Hub id (``Qwen/Qwen2-VL-2B-Instruct``, the default), a
local folder saved by ``save_pretrained``, or the tiny test model of :mod:`chatreid.model.tiny`.

Why a processor subclass: transformers' ``Qwen2VLProcessor`` always builds a video processor,
which needs torchvision; on CPU machines with the CPU torch wheel torchvision does not import. Re-ID
uses images only, so :class:`ChatReIDQwen2VLProcessor` takes ``(image_processor, tokenizer,
chat_template)`` and the image processor is the PIL backend (``Qwen2VLImageProcessorPil``), which
produces the same ``pixel_values`` / ``image_grid_thw`` as the torchvision one.

Supported: ``qwen2_vl`` and ``qwen2_5_vl`` model types, image inputs (one or many per sample).
Qwen2.5-VL shares Qwen2-VL's image processor and prompt format, and the module names the stage
surgery relies on (``model.visual``, ``model.visual.merger``, ``model.language_model``), so it
goes through the same code; its video inputs (``second_per_grid_ts``) are not supported here.
Other architectures load only with ``trust_remote_code=True`` and are used at the caller's risk.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.models.qwen2_vl import Qwen2VLProcessor

from chatreid.hub import check_local, offline

DEFAULT_MODEL = "Qwen/Qwen2-VL-2B-Instruct"
SUPPORTED_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")


def has_torchvision() -> bool:
    """True when torchvision imports (GPU machines); the CPU torch wheel here has a broken one."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return False
    return True


class ChatReIDQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor without the video processor (so without torchvision).

    Same text expansion (one ``<|image_pad|>`` per merged patch), same outputs
    (``input_ids``, ``attention_mask``, ``mm_token_type_ids``, ``pixel_values``, ``image_grid_thw``).
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # Qwen2VLProcessor passes video_processor=None positionally; ProcessorMixin zips the
        # arguments with this class's attributes (image_processor, tokenizer) and drops it.
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


def _register() -> None:
    """Let ``AutoProcessor.from_pretrained`` resolve checkpoints saved with our processor.

    Saved checkpoints name ``ChatReIDQwen2VLProcessor`` in ``processor_config.json``. Without
    torchvision we register it as the processor of both configs (the stock one cannot be built
    anyway); with torchvision nothing is overridden and transformers falls back to the stock
    processor by model type, which reads the same files.
    """
    if has_torchvision():
        return
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    for config_class in (Qwen2VLConfig, Qwen2_5_VLConfig):
        AutoProcessor.register(config_class, ChatReIDQwen2VLProcessor, exist_ok=True)


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
) -> ChatReIDQwen2VLProcessor:
    """The processor of a checkpoint: PIL image processor + tokenizer + chat template.

    ``min_pixels`` / ``max_pixels`` bound the image processor's resize (Qwen's ``smart_resize``);
    the training collator resizes to the stage's policy first, so these rarely matter there.
    """
    check_local(name_or_path, "model")  # a mistyped path fails here, before any Hub request
    hub = _hub_kwargs(revision, token)
    try:
        # AutoImageProcessor inside picks the PIL backend when torchvision is missing (same outputs)
        processor = ChatReIDQwen2VLProcessor.from_pretrained(name_or_path, **hub)
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

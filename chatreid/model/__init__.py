"""The model layer: one module per VLM family (``families``), loading without torchvision, the tiny
test models, stage surgery.

Importing this package registers each family's processor (``ChatReIDQwen2VLProcessor``, ...) with
``AutoProcessor`` (when torchvision is unavailable), so checkpoints saved by ChatReID load with
plain transformers calls.
"""

from chatreid.model.loading import (
    DEFAULT_MODEL,
    SUPPORTED_MODEL_TYPES,
    ChatReIDQwen2VLProcessor,
    has_torchvision,
    load_model,
    load_model_and_processor,
    load_processor,
)
from chatreid.model.families import Family, family_for, family_of
from chatreid.model.tiny import build_tiny, build_tiny_qwen2vl

__all__ = [
    "DEFAULT_MODEL",
    "SUPPORTED_MODEL_TYPES",
    "ChatReIDQwen2VLProcessor",
    "Family",
    "build_tiny",
    "family_for",
    "family_of",
    "build_tiny_qwen2vl",
    "has_torchvision",
    "load_model",
    "load_model_and_processor",
    "load_processor",
]

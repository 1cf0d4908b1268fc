"""One module per VLM family, and the registry that finds a model's family by ``config.model_type``.

Everything outside ``chatreid/model/`` reaches a family's facts through :func:`family_of` (or
:func:`family_for`): its classes, image token, chat template, image preprocessing, position ids,
the module names stage surgery freezes and replaces, the fast attention path and a tiny random
config for tests. Adding a family is one module here plus its tests; docs/models.md shows how.
"""

from __future__ import annotations

from chatreid.model.families.base import Family, family_for, family_of, register, supported_model_types
from chatreid.model.families.qwen2_vl import QWEN2_VL
from chatreid.model.families.qwen2_5_vl import QWEN2_5_VL
from chatreid.model.families.qwen3_vl import QWEN3_VL



def default_family() -> Family:
    """The family of ChatReID's default base model (the paper's Qwen2-VL-2B)."""
    return QWEN2_VL


__all__ = ["Family", "default_family", "QWEN2_VL", "QWEN2_5_VL", "QWEN3_VL", "family_for", "family_of", "register",
           "supported_model_types"]

"""Qwen2-VL's chat template (its home is the family module; kept here for existing imports)."""

from chatreid.model.families.qwen2_vl import QWEN2_VL_CHAT_TEMPLATE

__all__ = ["QWEN2_VL_CHAT_TEMPLATE"]

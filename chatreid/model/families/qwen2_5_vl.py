"""Qwen2.5-VL: Qwen2-VL's image processor, prompt format, positions for still images and module
names; its own classes and a vision tower with window attention and a SwiGLU MLP.

Its video inputs (``second_per_grid_ts``) are not used by ChatReID.
"""

from __future__ import annotations

from transformers.models.qwen2_5_vl import Qwen2_5_VLProcessor

from chatreid.model.families.base import register
from chatreid.model.families.qwen2_vl import Qwen2VLFamily


class ChatReIDQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor without the video processor (so without torchvision)."""

    chatreid_model_type = "qwen2_5_vl"

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


class Qwen2_5VLFamily(Qwen2VLFamily):
    model_type = "qwen2_5_vl"
    name = "Qwen2.5-VL"
    hub_example = "Qwen/Qwen2.5-VL-3B-Instruct"

    def config_class(self):
        from transformers import Qwen2_5_VLConfig
        return Qwen2_5_VLConfig

    def model_class(self):
        from transformers import Qwen2_5_VLForConditionalGeneration
        return Qwen2_5_VLForConditionalGeneration

    def processor_class(self):
        return ChatReIDQwen2_5_VLProcessor

    def _vision_config(self, hidden: int, overrides) -> dict:
        width = overrides.pop("vision_embed_dim", 32)
        return dict(
            depth=overrides.pop("vision_depth", 2), hidden_size=width, intermediate_size=2 * width,
            out_hidden_size=hidden, num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
            in_channels=3, window_size=112, fullatt_block_indexes=[1],
        )


QWEN2_5_VL = register(Qwen2_5VLFamily())

"""Qwen3-VL: 16-pixel patches, a learned position grid in the vision tower, interleaved M-RoPE
in the decoder, and DeepStack: features of some vision layers (each through its own merger,
``model.visual.deepstack_merger_list``) are added to the image tokens' hidden states after the
first decoder layers. So an encoded image carries those features (``extras``) and the language
model is given them (``lm_inputs``) wherever its image tokens are run.

Still images are placed like Qwen2-VL's (``get_rope_index``: (p, p + row, p + column), text
resuming at p + max(rows, columns)), so the positions and the image layout are inherited.
"""

from __future__ import annotations

import torch
from transformers.models.qwen3_vl import Qwen3VLProcessor

from chatreid.model.families.base import register
from chatreid.model.families.qwen2_vl import Qwen2VLFamily

# A compact Qwen3-VL-Instruct template for images and text (the Hub checkpoints ship the full one,
# with tools and reasoning; ChatReID's prompts use neither). No default system turn, as in Qwen3.
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ChatReIDQwen3VLProcessor(Qwen3VLProcessor):
    """Qwen3-VL's processor without the video processor (so without torchvision)."""

    chatreid_model_type = "qwen3_vl"

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


class Qwen3VLFamily(Qwen2VLFamily):
    model_type = "qwen3_vl"
    name = "Qwen3-VL"
    hub_example = "Qwen/Qwen3-VL-2B-Instruct"
    chat_template = QWEN3_VL_CHAT_TEMPLATE
    merger_modules = ("merger.", "deepstack_merger_list.")
    vision_config_keys = ("depth", "hidden_size", "num_heads", "patch_size", "spatial_merge_size",
                          "temporal_patch_size", "out_hidden_size", "intermediate_size",
                          "num_position_embeddings", "deepstack_visual_indexes")
    lora_blocks = r"model\.visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.linear_fc(1|2))"
    lora_mergers = r"model\.visual\.(merger|deepstack_merger_list\.\d+)\.linear_fc(1|2)"

    def config_class(self):
        from transformers import Qwen3VLConfig
        return Qwen3VLConfig

    def model_class(self):
        from transformers import Qwen3VLForConditionalGeneration
        return Qwen3VLForConditionalGeneration

    def processor_class(self):
        return ChatReIDQwen3VLProcessor

    def part_of(self, param_name: str) -> str:
        return super(Qwen2VLFamily, self).part_of(param_name)  # no legacy checkpoint names

    def _extras(self, features, n: int) -> list:
        # per image: its DeepStack features, one (tokens, hidden) tensor per injected decoder layer
        layers = features.deepstack_features
        return [[layer[i] for layer in layers] for i in range(n)]

    def lm_inputs(self, ids, image_token_id, extras) -> dict:
        if not extras:
            return {}
        mask = ids == image_token_id
        layers = len(extras[0])
        return {"visual_pos_masks": mask,
                "deepstack_visual_embeds": [torch.cat([x[k].to(ids.device) for x in extras]) for k in range(layers)]}

    def _text_config(self, tokenizer, overrides) -> dict:
        text = super()._text_config(tokenizer, overrides)
        head_dim = text["hidden_size"] // text["num_attention_heads"]
        half = head_dim // 2
        # interleaved M-RoPE: (t, h, w) frequencies take turns, t keeping the remainder
        text.update(head_dim=head_dim, rope_parameters={
            "rope_type": "default", "rope_theta": 5_000_000.0, "mrope_interleaved": True,
            "mrope_section": [half - 2 * (half // 4), half // 4, half // 4]})
        return text

    def _vision_config(self, hidden: int, overrides) -> dict:
        width = overrides.pop("vision_embed_dim", 32)
        depth = overrides.pop("vision_depth", 2)
        return dict(
            depth=depth, hidden_size=width, intermediate_size=2 * width, out_hidden_size=hidden, num_heads=2,
            patch_size=16, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
            num_position_embeddings=64, deepstack_visual_indexes=list(range(min(depth, 2))),
        )

    def _image_settings(self, patch: int) -> dict:
        # Qwen3-VL's image processor: 16-pixel patches, mean and std 0.5
        factor = patch * 2
        return dict(patch_size=patch, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                    min_pixels=factor * factor, max_pixels=factor * factor * 1280)


QWEN3_VL = register(Qwen3VLFamily())

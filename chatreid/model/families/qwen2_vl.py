"""Qwen2-VL: processor, image token, chat template, images, M-RoPE positions, surgery names,
fast vision attention and a tiny random config. Qwen2.5-VL and Qwen3-VL subclass it.

Modules as transformers 5 names them::

    model.visual            vision encoder: patch_embed + ViT blocks  ("the encoder")
    model.visual.merger     vision-language merger: 2x2 patch merge + MLP into the decoder's width
    model.language_model    LLM decoder (token embeddings included)  ("the decoder")
    lm_head                 output head (tied to the embeddings in the 2B model)

Why a processor subclass: transformers' ``Qwen2VLProcessor`` always builds a video processor,
which needs torchvision; with the CPU torch wheel torchvision does not import. Re-ID uses images
only, so the processor here takes ``(image_processor, tokenizer, chat_template)`` and the image
processor is the PIL backend, which produces the same ``pixel_values`` / ``image_grid_thw``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers.models.qwen2_vl import Qwen2VLProcessor

from chatreid.model.families import qwen_images
from chatreid.model.families.base import Family, register

IMAGE_TOKEN = "<|image_pad|>"

# Qwen2-VL's chat template, verbatim (the same text TRL ships as ``qwen2_5_vl.jinja``).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ChatReIDQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor without the video processor (so without torchvision).

    Same text expansion (one ``<|image_pad|>`` per merged patch), same outputs
    (``input_ids``, ``attention_mask``, ``mm_token_type_ids``, ``pixel_values``, ``image_grid_thw``).
    """

    chatreid_model_type = "qwen2_vl"

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # Qwen2VLProcessor passes video_processor=None positionally; ProcessorMixin zips the
        # arguments with this class's attributes (image_processor, tokenizer) and drops it.
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


def mrope_section(head_dim: int) -> list[int]:
    """An M-RoPE split of ``head_dim / 2`` rotary pairs into (t, h, w), in Qwen's 1:1.5:1.5 shape."""
    half = head_dim // 2
    quarter = half // 4
    return [quarter, (half - quarter) // 2, half - quarter - (half - quarter) // 2]


class Qwen2VLFamily(Family):
    model_type = "qwen2_vl"
    name = "Qwen2-VL"
    hub_example = "Qwen/Qwen2-VL-2B-Instruct"
    image_token = IMAGE_TOKEN
    chat_template = QWEN2_VL_CHAT_TEMPLATE
    vision_prefix = "model.visual."
    merger_modules = ("merger.",)
    decoder_prefixes = ("model.language_model.", "lm_head.")
    vision_config_keys = ("depth", "embed_dim", "hidden_size", "num_heads", "patch_size", "spatial_merge_size",
                          "temporal_patch_size", "out_hidden_size", "intermediate_size")
    # the real checkpoint's image settings, so a tiny model resizes like Qwen2-VL-2B
    tiny_image_settings = dict(min_pixels=56 * 56, max_pixels=28 * 28 * 1280)
    lora_blocks = r"model\.visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2|gate_proj|up_proj|down_proj))"
    lora_mergers = r"model\.visual\.merger\.mlp\.(0|2)"  # the merger's two Linear layers

    def config_class(self):
        from transformers import Qwen2VLConfig
        return Qwen2VLConfig

    def model_class(self):
        from transformers import Qwen2VLForConditionalGeneration
        return Qwen2VLForConditionalGeneration

    def processor_class(self):
        return ChatReIDQwen2VLProcessor

    def image_processor(self, **kwargs):
        """The PIL image processor (works without torchvision)."""
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
        return Qwen2VLImageProcessorPil(**kwargs)

    def vision_tower(self, model):
        return model.model.visual

    def language_model(self, model):
        return model.model.language_model

    def part_of(self, param_name: str) -> str:
        # also the names in saved Qwen2-VL checkpoints (``visual.*``, ``model.layers.*``)
        name = param_name.removeprefix("base_model.model.")
        if name.startswith("visual.merger."):
            return "merger"
        if name.startswith("visual."):
            return "vision_encoder"
        if name.startswith("model.") and not name.startswith(self.vision_prefix):
            return "decoder"
        return super().part_of(param_name)

    def lora_targets(self, frozen: set[str]) -> str:
        parts = [r"model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"]
        if "vision_encoder" not in frozen:
            parts.append(self.lora_blocks)
        if "merger" not in frozen:
            parts.append(self.lora_mergers)
        return "(" + "|".join(parts) + ")"

    # images: one preprocessor for training and retrieval (qwen_images)
    def pixel_values(self, image_processor, images, targets=None):
        return qwen_images.pixel_values(image_processor, images, targets)

    def processed_size(self, image_processor, width, height):
        return qwen_images.processed_size(image_processor, width, height)

    def encoded_tokens(self, image_processor, width, height):
        return qwen_images.encoded_tokens(image_processor, width, height)

    @torch.no_grad()
    def encode_images(self, model, image_processor, images: Sequence) -> list[tuple]:
        """Where model and processor have the expected layout, the patch embedding is computed
        from the image bytes (``qwen_images.patch_embeddings``) and handed to the tower in place of
        its own Conv3d over the processor's pixels; everything after it is the model's own code.
        Otherwise the pixels go the processor's way."""
        visual = self.vision_tower(model)
        conv = qwen_images.patch_conv(visual, image_processor)
        device = model.device
        if conv is not None:
            qwen_images.given_patch_embeds(visual.patch_embed)
            embeds, grid = qwen_images.patch_embeddings(visual, image_processor, images, conv)
            thws, grid = grid.tolist(), grid.to(device)
            qwen_images.PATCH.embeds = embeds
            try:
                # ``embeds`` stands in for the pixels; the patch embedding returns it as its output
                out = model.model.get_image_features(embeds, grid, return_dict=True)
            finally:
                qwen_images.PATCH.embeds = None
        else:
            pixels, grid = qwen_images.pixel_values(image_processor, images)
            thws, grid = grid.tolist(), grid.to(device)
            out = model.model.get_image_features(pixels.to(device), grid, return_dict=True)
        extras = self._extras(out, len(thws))
        return [(e, g, tuple(t), x) for e, g, t, x in zip(out.pooler_output, grid, thws, extras)]

    def _extras(self, features, n: int) -> list:
        return [None] * n

    def positions(self, ids, mask, grids, merge, image_token_id):
        """M-RoPE positions (3, B, L) of right-padded rows (0 on padding).

        The rule of Qwen2-VL's ``get_rope_index`` for still images, without its per-token Python
        loop: text tokens count up by one; an image's tokens sit at (t, h, w) = (p, p + row,
        p + column) of its merged grid, p being the position where it starts, and the text after
        it resumes at p + max(rows, columns). Qwen2.5-VL and Qwen3-VL place still images the
        same way. tests/test_families.py checks it against each model's own code.
        """
        ids_np = ids.cpu().numpy()
        lens = mask.sum(1).tolist()
        pos = np.zeros((3,) + ids_np.shape, dtype=np.int64)
        done: dict[tuple, int] = {}  # rows with the same tokens and image grids share positions
        for b, (row, n) in enumerate(zip(ids_np, lens)):
            key = (row[:n].tobytes(), tuple(grids[b]))
            if key in done:
                pos[:, b, :n] = pos[:, done[key], :n]
                continue
            done[key] = b
            is_img = row[:n] == image_token_id
            edges = np.flatnonzero(np.diff(is_img.astype(np.int8))) + 1  # where is_img flips
            starts = np.concatenate([[0], edges])
            ends = np.concatenate([edges, [n]])
            cur, k = 0, 0
            for s_, e_ in zip(starts, ends):
                if not is_img[s_]:
                    pos[:, b, s_:e_] = cur + np.arange(e_ - s_)
                    cur += e_ - s_
                    continue
                t, gh, gw = grids[b][k]
                h, w = gh // merge, gw // merge
                if t * h * w != e_ - s_:
                    raise RuntimeError(f"image {k} of row {b}: {e_ - s_} tokens for a {t}x{h}x{w} grid")
                tt, hh, ww = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
                pos[0, b, s_:e_] = cur + tt.reshape(-1)
                pos[1, b, s_:e_] = cur + hh.reshape(-1)
                pos[2, b, s_:e_] = cur + ww.reshape(-1)
                cur += max(h, w)
                k += 1
        return torch.from_numpy(pos).to(ids.device)

    def enable_fast_attention(self, model) -> int:
        from chatreid.model.fast import enable_batched_vision_attention
        return enable_batched_vision_attention(model)

    # tiny random checkpoints for tests
    def _text_config(self, tokenizer, overrides) -> dict:
        hidden, heads = overrides.pop("hidden_size", 64), overrides.pop("num_attention_heads", 4)
        return dict(
            vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
            num_hidden_layers=overrides.pop("num_hidden_layers", 2), num_attention_heads=heads,
            num_key_value_heads=overrides.pop("num_key_value_heads", 2), max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0,
                             "mrope_section": mrope_section(hidden // heads)},
            bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
            pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            tie_word_embeddings=True,
        )

    def _vision_config(self, hidden: int, overrides) -> dict:
        return dict(
            depth=overrides.pop("vision_depth", 2), embed_dim=overrides.pop("vision_embed_dim", 32), hidden_size=hidden,
            num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
        )

    def tiny_config(self, tokenizer, **overrides):
        """A config a few hundred KB large, consistent with ``tokenizer``.

        The pitfalls it avoids: ``mrope_section`` must sum to head_dim / 2 (the default [16, 24, 24]
        assumes 128-dim heads); the merger's output width must equal the text hidden size; the
        image/video/vision-start/end ids must be the tokenizer's.
        """
        ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in [
            ("image_token_id", IMAGE_TOKEN), ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        ]}
        text = self._text_config(tokenizer, overrides)
        vision = self._vision_config(text["hidden_size"], overrides)
        return self.config_class()(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids, **overrides)

    def build_tiny(self, out_dir: str | os.PathLike, seed: int = 0, tokenizer=None, config=None,
                   image_settings: dict | None = None) -> Path:
        """Build, save and return ``out_dir``: a random tiny checkpoint, deterministic in ``seed``,
        saved like a real one (config, safetensors, tokenizer, processor and chat template).
        ``tokenizer``, ``config`` and the image processor's ``image_settings`` default to the
        tiny ones."""
        from chatreid.model.families.qwen_tokenizer import build_tiny_tokenizer

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tokenizer = tokenizer if tokenizer is not None else build_tiny_tokenizer(seed=seed)
        tokenizer.chat_template = self.chat_template
        config = config if config is not None else self.tiny_config(tokenizer)
        patch = config.vision_config.patch_size
        image_processor = self.image_processor(**(image_settings or self._image_settings(patch)))
        processor = self.processor_class()(image_processor=image_processor, tokenizer=tokenizer,
                                           chat_template=self.chat_template)
        torch.manual_seed(seed)
        model = self.model_class()(config).eval()
        text = config.text_config
        model.generation_config.pad_token_id = text.pad_token_id
        model.generation_config.eos_token_id = [text.eos_token_id, text.bos_token_id]
        model.save_pretrained(out, safe_serialization=True)
        processor.save_pretrained(out)
        # Real checkpoints also carry the image processor's own file; older loaders read only that.
        image_processor.save_pretrained(out)
        return out

    def _image_settings(self, patch: int) -> dict:
        if patch == 14:
            return dict(self.tiny_image_settings)
        factor = patch * 2
        return dict(patch_size=patch, min_pixels=factor * factor, max_pixels=factor * factor * 1280)


QWEN2_VL = register(Qwen2VLFamily())

"""Qwen2-VL image preprocessing in torch, for the training collator's hot path.

The same arithmetic as ``Qwen2VLImageProcessorPil`` (smart-resize to multiples of 28, rescale,
normalise, 14x14 patches in 2x2 merge order, the frame repeated for the temporal patch), but with
one PIL resize per image (the stage policy's target and Qwen's rounding combined) and the float
work done by a few torch ops on uint8 input. The transformers implementation spends most of a
stage-2 sample's collation time in numpy float conversions and transposes.

Equality with the stock image processor, for images at their final size, is checked in
tests/test_training.py.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize


class FastQwen2VLImages:
    def __init__(self, image_processor):
        ip = image_processor
        self.patch, self.merge, self.temporal = ip.patch_size, ip.merge_size, ip.temporal_patch_size
        self.min_pixels, self.max_pixels = ip.size["shortest_edge"], ip.size["longest_edge"]
        mean = torch.tensor(ip.image_mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(ip.image_std, dtype=torch.float32).view(3, 1, 1)
        # (x * rescale - mean) / std, with the processor's order of operations
        self.rescale, self.mean, self.std = float(ip.rescale_factor), mean, std
        self.resample = Image.Resampling(int(ip.resample)) if ip.resample is not None else Image.Resampling.BICUBIC

    def final_size(self, height: int, width: int) -> tuple[int, int]:
        return smart_resize(height, width, factor=self.patch * self.merge, min_pixels=self.min_pixels,
                            max_pixels=self.max_pixels)

    def __call__(self, image: Image.Image, target: tuple[int, int] | None = None) -> tuple[torch.Tensor, list[int]]:
        """``(patches (n, 3*2*14*14), [1, grid_h, grid_w])`` of an RGB image.

        ``target`` is the (height, width) the stage's resolution policy asks for; Qwen's rounding
        is applied to it, and the image is resized once to the result.
        """
        h, w = self.final_size(*(target or (image.height, image.width)))
        if (image.height, image.width) != (h, w):
            image = image.resize((w, h), self.resample)
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).to(torch.float32)
        x = (x * self.rescale - self.mean) / self.std
        p, m, t = self.patch, self.merge, self.temporal
        gh, gw = h // p, w // p
        x = x.reshape(3, gh // m, m, p, gw // m, m, p).permute(1, 4, 2, 5, 0, 3, 6)  # (gh', gw', m, m, C, p, p)
        x = x.unsqueeze(5).expand(*x.shape[:5], t, p, p)
        return x.reshape(gh * gw, 3 * t * p * p), [1, gh, gw]

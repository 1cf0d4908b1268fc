"""The Qwen vision families' image preprocessing, once: Qwen2-VL, Qwen2.5-VL and Qwen3-VL share it.

Each image is resized with PIL exactly as the image processor does (``smart_resize`` to
multiples of patch x merge, then ``Image.resize`` with its ``resample``), rescaled, normalised and
cut into patches in the merge-window order (merged row, merged column, row in the window, column
in it), each flattened as (channel, temporal copy, y, x) with the still frame repeated for the
temporal patch. ``pixel_values`` is the fast path (float32 torch ops per group of equal-size
images), used by the training collator and the retrieval scorer alike; the stock path is the
image processor itself, and tests/test_families.py proves the two equal for every family.
``patch_embeddings`` goes one step further for the scorer: the vision tower's patch embedding
computed straight from the resized RGB bytes.
"""

from __future__ import annotations

import threading
from typing import Sequence

import numpy as np
import torch

def pixel_values(image_processor, images: Sequence, targets: Sequence | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen2-VL ``(pixel_values, image_grid_thw)`` of ``images``, equal to the image processor's.

    The processor's PIL backend works image by image in float64 numpy (about 14 ms for a 252x140
    crop on one core, more than the tiny model's whole forward). Here each image is resized by
    PIL exactly as the processor does (``smart_resize`` then ``Image.resize`` with its
    ``resample``), and the rescale / normalise / patchify steps run once per group of equal-size
    images as float32 tensor ops. Processors this does not recognise go the processor's way.

    ``targets``: per image, the (height, width) to round with ``smart_resize`` instead of the
    image's own size (the training collator's resolution policy: one resize, not two).
    """
    ip = image_processor
    needed = ("patch_size", "merge_size", "temporal_patch_size", "image_mean", "image_std", "size", "resample")
    if not all(getattr(ip, a, None) is not None for a in needed) or not (ip.do_resize and ip.do_rescale and ip.do_normalize):
        if targets is not None:
            raise ValueError("pixel_values: resize targets need an image processor of Qwen2-VL's layout")
        f = ip(images=[im.convert("RGB") for im in images], return_tensors="pt")
        return f["pixel_values"], f["image_grid_thw"]
    p, m, t = ip.patch_size, ip.merge_size, ip.temporal_patch_size
    arrays = _resized_arrays(ip, images, targets)
    # (x * rescale - mean) / std as one multiply-add, channel-last (no transposed copy)
    scale = torch.tensor([float(ip.rescale_factor) / sd for sd in ip.image_std], dtype=torch.float32)
    shift = torch.tensor([mu / sd for mu, sd in zip(ip.image_mean, ip.image_std)], dtype=torch.float32)
    grids, starts = _grids(arrays, len(images), p)
    out = torch.empty(int(starts[-1]), 3 * t * p * p)
    for (h, w), group in arrays.items():
        x = torch.from_numpy(np.stack([a for _, a in group])).float().mul_(scale).sub_(shift)  # (n, H, W, C)
        n, c = x.shape[0], x.shape[3]
        gh, gw = h // p, w // p
        # Qwen2-VL's patch order: (merged row, merged column, row in merge, column in merge), then
        # each patch flattened as (channel, temporal copy, y, x)
        x = x.view(n, gh // m, m, p, gw // m, m, p, c).permute(0, 1, 4, 2, 5, 7, 3, 6)
        x = x.unsqueeze(6).expand(n, gh // m, gw // m, m, m, c, t, p, p)
        idx = [i for i, _ in group]
        if idx == list(range(idx[0], idx[0] + n)):  # consecutive images: write in place, one copy
            out[starts[idx[0]]:starts[idx[0] + n]].view(n, gh // m, gw // m, m, m, c, t, p, p).copy_(x)
        else:
            for k, i in enumerate(idx):
                out[starts[i]:starts[i + 1]].view(gh // m, gw // m, m, m, c, t, p, p).copy_(x[k])
    return out, grids


PATCH = threading.local()  # per-thread patch embeddings handed to the vision tower (``encode``)


def given_patch_embeds(patch_embed) -> None:
    """Let ``patch_embed`` return embeddings computed outside it, once, on this thread only.

    Wraps the module's current forward (whatever hooks it carries); while ``PATCH.embeds`` is
    unset (every other caller, every other thread) the module behaves exactly as before.
    """
    if getattr(patch_embed, "_chatreid_given", False):
        return
    inner = patch_embed.forward

    def forward(hidden_states, *args, **kwargs):
        given = getattr(PATCH, "embeds", None)
        if given is None:
            return inner(hidden_states, *args, **kwargs)
        PATCH.embeds = None  # one use: the tower's single patch_embed call
        return given

    patch_embed.forward = forward
    patch_embed._chatreid_given = True


def patch_conv(visual, image_processor):
    """(weight, bias) of the vision tower's patch embedding as a 2-D convolution over raw RGB
    bytes, or None where the model or processor is not the layout this relies on.

    Qwen2-VL embeds each 14x14 patch of an image with a Conv3d whose kernel spans
    ``temporal_patch_size`` frames, and the processor feeds a still image as that many identical
    copies. So the temporal kernel slices can be summed, and the processor's rescale/normalise
    (x * rescale_factor - mean) / std folded in: W' = sum_t W[:, c, t] * rescale / std[c],
    b' = -sum_{c,y,x} sum_t W[:, c, t] * mean[c] / std[c]. Exact in real arithmetic; in float32 the
    embeddings differ from the processor path's by about its own rounding (~1e-6).
    """
    ip = image_processor
    pe = getattr(visual, "patch_embed", None)
    proj = getattr(pe, "proj", None)
    needed = ("patch_size", "merge_size", "temporal_patch_size", "image_mean", "image_std", "size", "resample",
              "rescale_factor")
    if not isinstance(proj, torch.nn.Conv3d) or not all(getattr(ip, a, None) is not None for a in needed) \
            or not (ip.do_resize and ip.do_rescale and ip.do_normalize) or getattr(ip, "do_convert_rgb", True) is False:
        return None
    t, p = ip.temporal_patch_size, ip.patch_size
    if tuple(proj.kernel_size) != (t, p, p) or tuple(proj.stride) != (t, p, p) or proj.in_channels != 3 \
            or tuple(proj.padding) != (0, 0, 0) or tuple(proj.dilation) != (1, 1, 1) or proj.groups != 1 \
            or getattr(pe, "temporal_patch_size", t) != t or getattr(pe, "patch_size", p) != p:
        return None
    w = proj.weight.detach().float().sum(2)  # (embed, 3, p, p): identical frames
    scale = torch.tensor([float(ip.rescale_factor) / sd for sd in ip.image_std], device=w.device)
    shift = torch.tensor([mu / sd for mu, sd in zip(ip.image_mean, ip.image_std)], device=w.device)
    bias = -(w * shift.view(1, 3, 1, 1)).sum((1, 2, 3))
    if proj.bias is not None:
        bias = bias + proj.bias.detach().float()
    return (w * scale.view(1, 3, 1, 1)).contiguous(), bias


def _resized_arrays(image_processor, images: Sequence,
                    targets: Sequence | None = None) -> dict[tuple[int, int], list[tuple[int, np.ndarray]]]:
    """Each image resized exactly as the Qwen2-VL processor does, as uint8 (H, W, 3), grouped by size."""
    from PIL import Image

    ip = image_processor
    resample = Image.Resampling(int(ip.resample))
    groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    for i, im in enumerate(images):
        if im.mode != "RGB":
            im = im.convert("RGB")
        th, tw = targets[i] if targets is not None and targets[i] is not None else (im.height, im.width)
        h, w = processed_size(ip, tw, th)
        if (w, h) != im.size:
            im = im.resize((w, h), resample=resample)
        groups.setdefault((h, w), []).append((i, np.asarray(im)))
    return groups


def _grids(groups: dict, n: int, patch: int) -> tuple[torch.Tensor, np.ndarray]:
    """``image_grid_thw`` of ``n`` images grouped by ``_resized_arrays``, and where each image's
    patches start in the concatenated output (``starts[i]:starts[i + 1]``)."""
    grids = torch.zeros(n, 3, dtype=torch.long)
    for (h, w), group in groups.items():
        for i, _ in group:
            grids[i] = torch.tensor([1, h // patch, w // patch])
    counts = (grids[:, 1] * grids[:, 2]).tolist()
    return grids, np.concatenate([[0], np.cumsum(counts)]).astype(int)


def processed_size(image_processor, width: int, height: int) -> tuple[int, int]:
    """(height, width) the processor resizes a ``width`` x ``height`` image to (its
    ``smart_resize``), from the size alone; Qwen2-VL's defaults where the processor does not say.
    Raises the processor's own ValueError for an image it cannot read (Qwen2-VL: an aspect ratio
    over 200), so callers ask the processor rather than restate its rule."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    ip = image_processor
    p, m = getattr(ip, "patch_size", None) or 14, getattr(ip, "merge_size", None) or 2
    size = getattr(ip, "size", None) or {}
    size = size if isinstance(size, dict) else dict(size)
    lo = size.get("shortest_edge") or getattr(ip, "min_pixels", None) or 56 * 56
    hi = size.get("longest_edge") or getattr(ip, "max_pixels", None) or 28 * 28 * 1280
    return smart_resize(height, width, factor=p * m, min_pixels=lo, max_pixels=hi)


def encoded_tokens(image_processor, width: int, height: int) -> int:
    """Tokens the vision tower makes of a ``width`` x ``height`` image (its merged patches after
    ``processed_size``); 0 for an image the processor refuses, which is never encoded."""
    ip = image_processor
    factor = (getattr(ip, "patch_size", None) or 14) * (getattr(ip, "merge_size", None) or 2)
    try:
        h, w = processed_size(ip, width, height)
    except ValueError:
        return 0
    return (h // factor) * (w // factor)


_CHUNK_PIXELS = 1 << 19  # pixels per convolution call in ``patch_embeddings`` (6 MB as float32)


def patch_embeddings(visual, image_processor, images: Sequence, conv=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(patch embeddings, image_grid_thw)``: what the vision tower's ``patch_embed`` makes of the
    processor's pixels for ``images``, computed straight from the resized RGB bytes.

    One strided 2-D convolution per group of equal-size images (``patch_conv``), on the model's
    device, then the outputs put in Qwen2-VL's patch order (merged row, merged column, row in the
    merge window, column in it). Skips the processor's float pixel tensor, which holds every
    pixel ``temporal_patch_size`` times.
    """
    ip = image_processor
    conv = conv if conv is not None else patch_conv(visual, ip)
    if conv is None:
        raise ValueError("patch_embeddings: the model's patch embedding or the image processor is not Qwen2-VL's layout")
    weight, bias = conv
    p, m = ip.patch_size, ip.merge_size
    device, dtype = weight.device, visual.patch_embed.proj.weight.dtype
    groups = _resized_arrays(ip, images)
    grids, starts = _grids(groups, len(images), p)
    out = torch.empty(int(starts[-1]), weight.shape[0], device=device, dtype=dtype)
    for (h, w), group in groups.items():
        # a few images at a time: the float copy stays small (reused memory, no fresh pages)
        step = max(1, _CHUNK_PIXELS // (h * w))
        for c0 in range(0, len(group), step):
            part = group[c0:c0 + step]
            x = torch.from_numpy(np.stack([a for _, a in part])).to(device)  # (n, H, W, 3) uint8
            x = x.permute(0, 3, 1, 2).float()  # channels-last memory, NCHW view
            y = torch.nn.functional.conv2d(x, weight, bias, stride=p)  # (n, embed, H/p, W/p)
            n, e, gh, gw = y.shape
            y = y.view(n, e, gh // m, m, gw // m, m).permute(0, 2, 4, 3, 5, 1)  # Qwen2-VL's patch order
            idx = [i for i, _ in part]
            if idx == list(range(idx[0], idx[0] + n)):  # consecutive images: one copy
                out[starts[idx[0]]:starts[idx[0] + n]].view(n, gh // m, gw // m, m, m, e).copy_(y)
            else:
                for k, i in enumerate(idx):
                    out[starts[i]:starts[i + 1]].view(gh // m, gw // m, m, m, e).copy_(y[k])
    return out, grids


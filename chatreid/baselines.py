"""Non-learned Re-ID baselines: the HSV colour histogram.

The yardstick for "is this benchmark trivial?" (docs/synthpeds.md), a weight-free pre-filter
(``chatreid.retrieval.prefilter``), and a sanity floor for evaluation. Numpy and Pillow only.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np
from PIL import Image

SIZE = (64, 128)  # (width, height) every image is resized to, Market-1501's crop size


def _hsv(image) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            image = im.convert("RGB")
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"color_histogram_features: expected HxWx3 uint8 arrays, got {image.shape} {image.dtype}")
        image = Image.fromarray(image, "RGB")
    elif not isinstance(image, Image.Image):
        raise ValueError(f"color_histogram_features: expected PIL images, arrays or paths, got {type(image).__name__}")
    return np.asarray(image.convert("RGB").resize(SIZE, Image.BILINEAR).convert("HSV"))


def color_histogram_features(images: Iterable, bins: tuple[int, int, int] = (8, 4, 4), stripes: int = 6,
                             min_saturation: int = 64) -> np.ndarray:
    """One HSV histogram per horizontal stripe, concatenated: (n, stripes * (h*s*v + v)) float32.

    Each image is resized to 128x64 and cut into ``stripes`` equal horizontal bands (head to
    feet), so the feature knows "red on top, blue below" but nothing finer. Pixels with
    saturation >= ``min_saturation`` (0-255) fall into joint hue x saturation x value bins; greyer
    pixels, whose hue is noise (a slight colour cast swings it round the wheel), fall into
    value-only bins. Each stripe's histogram is L1-normalised and the whole vector sums to 1.
    ``images``: PIL images, HxWx3 uint8 arrays or file paths.
    """
    hb, sb, vb = bins
    per = hb * sb * vb + vb
    hsv = [_hsv(im) for im in images]
    if not hsv:
        return np.zeros((0, stripes * per), dtype=np.float32)
    a = np.stack(hsv).astype(np.int64)  # (n, 128, 64, 3)
    n, h = a.shape[0], a.shape[1]
    if not 1 <= stripes <= h:
        raise ValueError(f"stripes must be in 1..{h}, got {stripes}")
    if not 0 <= min_saturation < 256:
        raise ValueError(f"min_saturation must be in 0..255, got {min_saturation}")
    hue, sat, val = a[..., 0], a[..., 1], a[..., 2]
    chromatic = (hue * hb // 256) * (sb * vb) + ((sat - min_saturation) * sb // (256 - min_saturation)) * vb + val * vb // 256
    code = np.where(sat >= min_saturation, chromatic, hb * sb * vb + val * vb // 256)
    stripe_of_row = np.minimum(np.arange(h) * stripes // h, stripes - 1)
    # One bincount over (image, stripe, bin) for the whole batch.
    flat = (np.arange(n)[:, None, None] * stripes + stripe_of_row[None, :, None]) * per + code
    hist = np.bincount(flat.ravel(), minlength=n * stripes * per).reshape(n, stripes, per).astype(np.float32)
    hist /= hist.sum(axis=2, keepdims=True)
    return (hist / stripes).reshape(n, stripes * per)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cosine similarity between the rows of ``a`` (m, d) and ``b`` (n, d): (m, n)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - a @ b.T


def chi_square_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chi-square distance 0.5 * sum (x - y)^2 / (x + y) between histogram rows: (m, n).

    Computed a few query rows at a time so the temporary stays near 16M floats.
    """
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    chunk = max(1, (1 << 24) // max(1, b.size))
    out = np.empty((len(a), len(b)), dtype=np.float32)
    for i in range(0, len(a), chunk):
        x = a[i:i + chunk, None, :]
        s = x + b[None, :, :]
        out[i:i + chunk] = 0.5 * np.sum(np.where(s > 0, (x - b[None]) ** 2 / np.maximum(s, 1e-12), 0), axis=2)
    return out

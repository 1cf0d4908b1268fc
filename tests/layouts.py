"""Tiny on-disk copies of the benchmarks' real layouts, written by the tests themselves.

File names, folder names, list files and JSON schemas follow the public releases; the images
are small solid-colour JPEG/PNG/BMP files (colour derived from the name, so a round trip through
the store can be checked pixel by pixel).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from PIL import Image


def colour_of(name: str) -> tuple[int, int, int]:
    h = hashlib.md5(name.encode()).digest()
    return h[0], h[1], h[2]


def image_bytes(name: str, fmt: str = "JPEG", size=(8, 16), mode: str = "RGB") -> bytes:
    img = Image.new(mode, size, colour_of(name) if mode == "RGB" else colour_of(name)[0])
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def write_image(path: Path, fmt: str | None = None, size=(8, 16), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or {".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[path.suffix.lower()]
    path.write_bytes(image_bytes(path.name, fmt, size, mode))
    return path


# -- Market-1501 ---------------------------------------------------------------------------------
MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg",
                           "0007_c3s3_077419_03.jpg", "0007_c6s3_077444_01.jpg",
                           "1500_c5s3_065212_02.jpg"],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c1s6_015971_00.jpg"],
    "bounding_box_test": ["0001_c2s1_000301_01.jpg", "0001_c5s1_001426_01.jpg",
                          "0003_c4s6_016046_02.jpg", "0000_c1s1_000151_01.jpg",
                          "0000_c6s4_002452_03.jpg", "-1_c1s1_000401_03.jpg",
                          "-1_c3s1_000551_01.jpg"],
}


def make_market(root: Path, files=MARKET, thumbs: bool = True) -> Path:
    for folder, names in files.items():
        for name in names:
            write_image(root / folder / name)
    if thumbs:  # real copies carry a Windows thumbnail cache; it is not an image
        (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0" * 10)
    return root


def write_market_attributes(root: Path, train: dict[str, dict], test: dict[str, dict]) -> Path:
    """market_attribute.mat in its real layout: struct market_attribute{train,test}, each with
    27 1xN uint8 code arrays and image_index, a 1xN cell array of identity strings."""
    import numpy as np
    from scipy.io import savemat

    from chatreid.data.attributes import MARKET_MAT_FIELDS

    def part(codes_by_id: dict[str, dict]):
        ids = sorted(codes_by_id)
        out = {f: np.array([[codes_by_id[i].get(f, 1) for i in ids]], dtype=np.uint8)
               for f in MARKET_MAT_FIELDS}
        cell = np.empty((1, len(ids)), dtype=object)
        for k, i in enumerate(ids):
            cell[0, k] = i
        out["image_index"] = cell
        return out

    path = root / "Market-1501_Attribute" / "market_attribute.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"market_attribute": {"train": part(train), "test": part(test)}})
    return path

"""A stand-in image store with realistic metadata and placeholder pixels, for tests and benchmarks.

The instruction engine reads only a store's metadata (identity, camera, split, clothes, modality,
captions, attributes, size). Rendering 10,000 SynthPeds identities' images takes far longer than
building instructions from them, so the benchmark and the tests use this stand-in: the real store
schema (``chatreid.data.store.features``), SynthPeds-like metadata drawn from the attribute
vocabulary, and every ``image`` cell one shared 4x8 PNG (``width``/``height`` hold the sizes the
metadata claims, which is what stage 1's size filter reads).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

from chatreid.data.attributes import VOCAB, to_text

_VIEWS = ("front", "back", "side")


@dataclass
class DatasetSpec:
    name: str
    identities: int
    images: tuple[int, int] = (4, 12)  # train images per identity, Uniform{a..b}
    captions: bool = True              # free-text captions per image
    attributes: bool = True
    infrared: float = 0.0              # share of an identity's images that are infrared
    outfits: int = 1                   # clothes per identity (cloth-changing when > 1)
    test_identities: int = 0           # extra identities with query/gallery images only


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 8), (128, 100, 90)).save(buf, format="PNG")
    return buf.getvalue()


def _random_attrs(rng) -> dict:
    return {k: v[int(rng.integers(len(v)))] for k, v in VOCAB.items()}


def metadata(specs: list[DatasetSpec], seed: int = 0) -> dict[str, list]:
    """Columnar store metadata for ``specs`` (no image column)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("image_id", "dataset", "path", "pid", "camid", "split",
                                             "clothes_id", "modality", "captions", "attributes",
                                             "width", "height")}
    for spec in specs:
        total = spec.identities + spec.test_identities
        for pid in range(1, total + 1):
            test = pid > spec.identities
            traits = _random_attrs(rng)
            outfits = [_random_attrs(rng) for _ in range(spec.outfits)]
            n = int(rng.integers(spec.images[0], spec.images[1] + 1))
            for j in range(n):
                split = ("query" if j == 0 else "gallery") if test else "train"
                o = j % spec.outfits
                ir = rng.random() < spec.infrared
                a = {k: traits[k] for k in ("gender", "age", "hair")}
                a.update({k: outfits[o][k] for k in VOCAB if k not in a})
                if ir:  # colours cannot be seen in infrared, as SynthPeds annotates
                    a.pop("upper_color"), a.pop("lower_color")
                view = _VIEWS[int(rng.integers(3))]
                path = f"{split}/{pid:05d}_c{j % 6 + 1}_{j:04d}.png"
                cols["image_id"].append(f"{spec.name}/{path}")
                cols["dataset"].append(spec.name)
                cols["path"].append(path)
                cols["pid"].append(pid)
                cols["camid"].append(j % 6 + 1)
                cols["split"].append(split)
                cols["clothes_id"].append(f"{pid}_{o}" if spec.outfits > 1 else None)
                cols["modality"].append("infrared" if ir else "visible")
                caps = []
                if spec.captions:
                    caps = [f"{to_text(a)[:-1]}, seen from the {view}, person {pid} outfit {o}."]
                cols["captions"].append(caps)
                cols["attributes"].append(json.dumps(a if spec.attributes else {}, sort_keys=True))
                cols["width"].append(int(rng.integers(48, 160)))
                cols["height"].append(int(rng.integers(96, 320)))
    return cols


def make_store(path, specs: list[DatasetSpec], seed: int = 0, meta: dict | None = None) -> str:
    """Write a stand-in store (``save_to_disk``) at ``path``; ``meta`` overrides ``metadata()``."""
    import datasets

    from chatreid.data.store import features

    meta = meta if meta is not None else metadata(specs, seed)
    png = _png()
    n = len(meta["image_id"])
    cols = dict(meta)
    cols["image"] = [{"bytes": png, "path": None}] * n
    ds = datasets.Dataset.from_dict(cols, features=features())
    ds.save_to_disk(str(path))
    return str(path)

"""Stage 1, person attribute understanding: captioning rows, their sources and quality filters.

Caption sources, in order (the paper's section 3.2): the benchmark's own captions (e.g. the
PEDES datasets), SynthPeds' ground-truth captions (its ``captions`` column), the image's attribute
annotations rendered to text (``chatreid.data.attributes.to_text``), and last a captioner for
images with none of these. An image gets rows from the first source it has (one row per caption).

Quality filters of section 3.2, applied to ``train``-split images before anything else, each
counted:

* ``too_small``: narrower than ``min_width``, lower than ``min_height`` or fewer than
  ``min_pixels`` pixels ("we filter images based on size and resolution").
* ``occluded``: the paper drops images whose clothing GPT-4o "failed to recognize". We read that
  from what we have: an image whose attribute annotation is non-empty but says nothing about
  clothing (no sleeve, garment type/length or colour key), or whose chosen caption mentions no
  clothing word (``CLOTHING_WORDS``; this also judges a captioner's output), cannot have its
  clothing described and is dropped.
* ``no_text``: no caption source at all (no captions, no attributes, no captioner given).
"""

from __future__ import annotations

import json
import re

import numpy as np

CLOTHING_KEYS = ("sleeve", "upper_color", "lower_type", "lower_length", "lower_color")
CLOTHING_WORDS = (
    "shirt", "t-shirt", "tshirt", "top", "blouse", "jacket", "coat", "sweater", "hoodie", "vest",
    "jumper", "cardigan", "suit", "uniform", "dress", "skirt", "pants", "trousers", "jeans",
    "shorts", "leggings", "garment", "clothes", "clothing", "outfit", "sleeve", "sleeves",
    "sleeveless", "tracksuit", "overalls", "robe", "gown", "blazer", "parka", "windbreaker",
)
_CLOTHING_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w in CLOTHING_WORDS) + r")\b",
                          re.IGNORECASE)
SOURCES = ("benchmark", "synthpeds", "attributes", "captioner")


def mentions_clothing(text: str) -> bool:
    return bool(_CLOTHING_RE.search(text or ""))


def source_of(dataset: str, captions: list, attributes: dict, captioned: bool) -> str | None:
    if captioned:
        return "captioner"
    if any(c and c.strip() for c in captions or []):
        return "synthpeds" if dataset == "synthpeds" else "benchmark"
    if attributes:
        return "attributes"
    return None


def filter_images(meta: dict, cfg, captioner=None, store=None, progress: bool = True):
    """(keep mask, counts per filter, captions by the captioner {image_id: text}).

    ``captioner`` is a ``captioners.CachedCaptioner`` (or None); ``store`` gives it the images.
    """
    from chatreid.instructions.captioners import caption_images

    n = len(meta["image_id"])
    keep = np.zeros(n, dtype=bool)
    counts = {"train_images": 0, "too_small": 0, "occluded": 0, "no_text": 0, "captioned": 0}
    captioned: dict[str, str] = {}
    todo = []
    for i in range(n):
        if meta["split"][i] != "train":
            continue
        counts["train_images"] += 1
        w, h = int(meta["width"][i]), int(meta["height"][i])
        if w < cfg.min_width or h < cfg.min_height or w * h < cfg.min_pixels:
            counts["too_small"] += 1
            continue
        attrs = json.loads(meta["attributes"][i]) if meta["attributes"][i] else {}
        caps = [c for c in meta["captions"][i] or [] if c and c.strip()]
        if attrs and not any(k in attrs for k in CLOTHING_KEYS):
            counts["occluded"] += 1
            continue
        if caps:
            if not any(mentions_clothing(c) for c in caps):
                counts["occluded"] += 1
                continue
        elif not attrs:
            if captioner is None:
                counts["no_text"] += 1
                continue
            todo.append(i)
            continue
        keep[i] = True
    answers = caption_images(captioner, [meta["image_id"][i] for i in todo], store.image, progress) \
        if todo else {}
    for i in todo:
        iid = meta["image_id"][i]
        text = answers[iid]
        counts["captioned"] += 1
        if not text.strip():
            counts["no_text"] += 1
        elif not mentions_clothing(text):
            counts["occluded"] += 1
        else:
            captioned[iid] = text
            keep[i] = True
    return keep, counts, captioned


def with_captions(meta: dict, captioned: dict[str, str]) -> dict:
    """A copy of ``meta`` whose captioned images carry their one new caption."""
    if not captioned:
        return meta
    out = dict(meta)
    out["captions"] = [[captioned[iid]] if iid in captioned else caps
                       for iid, caps in zip(meta["image_id"], meta["captions"])]
    return out


def items(pool) -> np.ndarray:
    """(image, text position) pairs: one captioning row each, image order then caption order."""
    img = np.repeat(np.arange(len(pool), dtype=np.int64), pool.text_count)
    return np.stack([img, np.arange(len(img), dtype=np.int64)], 1)


def rows(ctx, rng, pairs: np.ndarray, captioned: set) -> list[dict]:
    from chatreid.instructions.rows import make_row

    pool = ctx.pool
    out = []
    for j, pos in pairs.tolist():
        iid = pool.image_id[j]
        src = int(pool.text_src[pos])
        attrs_known = pool.attr_sig[j] >= 0
        source = source_of(pool.dataset_names[pool.ds[j]], [] if src < 0 else ["x"],
                           {"known": 1} if attrs_known else {}, iid in captioned)
        out.append(make_row("caption", [(ctx.render("caption", rng), pool.texts[pool.text_code[pos]])],
                            [iid], {"source": source, "caption": src}))
    return out

"""A tiny image store and stage 1/2/3 instruction datasets, built in a second, for tests and smoke runs.

The rows follow docs/architecture.md exactly (``messages``, ``image_ids``, ``task``, ``meta``), so a
run on them exercises the same loading, validation and collation as a run on the data engine's
output. The images are flat-colour figures (upper/lower body colours per identity) at a mix of
sizes below, between and above the stage resolution thresholds.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (30, 160, 60), "black": (20, 20, 20),
           "white": (235, 235, 235), "yellow": (220, 200, 40), "gray": (128, 128, 128), "pink": (230, 120, 170)}
SIZES = [(128, 64), (256, 128), (300, 150), (420, 210)]  # (height, width)
CAPTION_PROMPT = (
    "In the {image} provided, can you give a detailed description of the pedestrian, including their gender, "
    "age range, hair, type and color of clothing, footwear type and color, posture or gait, any patterns or "
    "accessories, and any distinguishing features?"
)
REID_PROMPT = ("Given the {image} provided, identify which of the following images show the same pedestrian "
               "as in the first image.")


def _png(colours, size, seed) -> bytes:
    h, w = size
    img = Image.new("RGB", (w, h), (90 + seed % 40, 100, 110))
    d = ImageDraw.Draw(img)
    d.ellipse([w * 0.35, h * 0.02, w * 0.65, h * 0.17], fill=(210, 170, 140))
    d.rectangle([w * 0.25, h * 0.18, w * 0.75, h * 0.55], fill=COLOURS[colours[0]])
    d.rectangle([w * 0.3, h * 0.55, w * 0.7, h * 0.95], fill=COLOURS[colours[1]])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_demo_store(out_dir, n_people: int = 8, per_person: int = 3, seed: int = 0) -> Path:
    """Save a tiny image store (the schema of chatreid.data.store) and return its folder."""
    import datasets

    from chatreid.data.store import features

    rng = random.Random(seed)
    names = list(COLOURS)
    rows = []
    for pid in range(n_people):
        upper, lower = names[pid % len(names)], names[(pid * 3 + 1) % len(names)]
        for k in range(per_person):
            size = SIZES[(pid + k) % len(SIZES)]
            path = f"demo/{pid:04d}_c{k + 1}_{k:02d}.png"
            rows.append({
                "image_id": f"demo/{path}", "image": {"bytes": _png((upper, lower), size, rng.randrange(1000)),
                                                      "path": None},
                "dataset": "demo", "path": path, "pid": pid, "camid": k + 1,
                "split": "train", "clothes_id": None, "modality": "visible",
                "captions": [f"A person wearing a {upper} top and {lower} trousers."],
                "attributes": json.dumps({"upper_color": upper, "lower_color": lower}),
                "width": size[1], "height": size[0],
            })
    ds = datasets.Dataset.from_list(rows, features=features())
    out = Path(out_dir)
    ds.save_to_disk(str(out))
    return out


def _content(text: str, n_images: int) -> list[dict]:
    return [{"type": "image", "text": None}] * n_images + [{"type": "text", "text": text}]


def _row(task, prompt, n_images, answer, image_ids, meta) -> dict:
    return {
        "messages": [{"role": "user", "content": _content(prompt, n_images)},
                     {"role": "assistant", "content": [{"type": "text", "text": answer}]}],
        "image_ids": image_ids, "task": task, "meta": json.dumps(meta),
    }


def demo_rows(store, stage: int, n: int, pids: list[int], seed: int = 0) -> list[dict]:
    """``n`` rows of one stage over the identities ``pids`` of a demo store."""
    meta = store.metadata()
    by_pid: dict[int, list[str]] = {}
    caption = {}
    for iid, pid, caps in zip(meta["image_id"], meta["pid"], meta["captions"]):
        if pid in pids:
            by_pid.setdefault(pid, []).append(iid)
            caption[iid] = caps[0]
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pid = rng.choice(pids)
        q = rng.choice(by_pid[pid])
        if stage == 1:
            rows.append(_row("caption", CAPTION_PROMPT.format(image="person image"), 1, caption[q], [q], {"pid": pid}))
        elif stage == 2:
            same = i % 2 == 0
            other_pid = pid if same else rng.choice([p for p in pids if p != pid])
            g = rng.choice([x for x in by_pid[other_pid] if x != q] or by_pid[other_pid])
            rows.append(_row("i2i_one_to_one", "Do these two images contain the same pedestrian identity?", 2,
                             "Yes" if same else "No", [q, g], {"same": same}))
        else:
            gallery = [rng.choice([x for x in by_pid[pid] if x != q] or by_pid[pid])]
            gallery += [rng.choice(by_pid[p]) for p in rng.sample([p for p in pids if p != pid], 2)]
            rng.shuffle(gallery)
            hit = gallery.index(next(g for g in gallery if g in by_pid[pid])) + 2
            rows.append(_row("reid_standard", REID_PROMPT.format(image="person image"), 1 + len(gallery),
                             f"Image {hit}.", [q] + gallery, {"match": hit}))
    return rows


def make_demo_instructions(store_dir, stage: int, out_dir, n_train: int = 16, n_val: int = 4, seed: int = 0) -> Path:
    """Save a ``DatasetDict`` (train / validation, split by identity) of stage rows; return its folder."""
    import datasets

    from chatreid.data.store import ImageStore

    store = ImageStore.load(str(store_dir))
    pids = sorted(set(store.metadata()["pid"]))
    n_val_people = max(3, len(pids) // 4)
    train_p, val_p = pids[:-n_val_people], pids[-n_val_people:]
    dsd = datasets.DatasetDict({
        "train": datasets.Dataset.from_list(demo_rows(store, stage, n_train, train_p, seed)),
        "validation": datasets.Dataset.from_list(demo_rows(store, stage, n_val, val_p, seed + 1)),
    })
    out = Path(out_dir)
    dsd.save_to_disk(str(out))
    return out

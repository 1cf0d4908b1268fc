"""Image stores and instruction rows for the training tests, made by the project's own pieces.

A tiny SynthPeds world (``chatreid.data.synthpeds.generate``, Market layout) is read by the real
reader and written into an image store by ``chatreid.data.builder.build``; the stage 1/2/3 rows are
built from that store by the instruction engine (``chatreid.instructions.build``), so the prompts
are those of ``chatreid/prompts.py`` and the answers are the engine's. Nothing here knows a prompt.

``sizes`` makes the store's image files at given sizes (the world's images, re-saved), so that the
collator meets images below, at, between and above the stage resolution thresholds
(256x128 for stage 1, 384x192 for stage 2).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

# (height, width): below stage 1's 256x128, exactly it, between 256x128 and 384x192, above 384x192.
SIZES = ((128, 64), (256, 128), (300, 150), (420, 210))

# The Market layout has one outfit per person and no infrared camera: the cloth-changing and
# visible-infrared Re-ID tasks have no query to draw, so stage 3 leaves them out (``--mix`` syntax).
STAGE3_MIX = ("reid_cc=0", "reid_vi=0")


def synthpeds_store(root, n_ids: int = 12, images_per_id: int = 4, seed: int = 0,
                    sizes=None) -> Path:
    """Generate a SynthPeds world under ``root`` and build its image store at ``root/store``.

    Half the identities are train identities (the Market layout's split); only those enter
    instruction rows. With ``sizes``, the k-th image file is re-saved at ``sizes[k % len(sizes)]``
    (height, width) before the store is built, so the store records those sizes.
    """
    from PIL import Image

    from chatreid.data import read
    from chatreid.data.builder import build, relative_path
    from chatreid.data.synthpeds import generate

    root = Path(root)
    world = Path(generate("market", root / "world", n_ids, seed=seed, images_per_id=images_per_id)["out"])
    records = read("synthpeds", world)
    source = records
    if sizes:
        files = root / "files"
        resized = []
        for k, record in enumerate(records):
            h, w = sizes[k % len(sizes)]
            target = files / relative_path(record, world)
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(record.path) as img:
                img.convert("RGB").resize((w, h), Image.Resampling.BICUBIC).save(target, quality=95)
            resized.append(dataclasses.replace(record, path=str(target)))
        source = (resized, files)
    out = root / "store"
    build([source], out, progress=False)
    return out


def instructions(store, out, stage: int, size: int, seed: int = 0) -> Path:
    """Build the stage's instruction dataset (train / validation) from ``store`` into ``out``.

    ``size`` rows in all, a fifth of them (and of the identities) in validation. Galleries are
    kept short (stage 2: 2..3 images, stage 3: 1..3) so the rows suit a tiny store and a CPU.
    """
    from chatreid.instructions import BuildConfig, build, parse_mix

    config = BuildConfig(stage=stage, size=size, seed=seed, val_fraction=0.2, gallery=(2, 3),
                         reid_gallery=(1, 3), mix=parse_mix(stage, list(STAGE3_MIX) if stage == 3 else None))
    build(store, out, config, progress=False)
    return Path(out)


def rows_of(path, n: int, *, split: str = "train", tasks=None, single_turn: bool = False,
            partial: bool = False) -> list[dict]:
    """The first ``n`` rows of a built instruction dataset (``chatreid.instructions.load``),
    optionally only of ``tasks`` and / or only single-turn rows (one question, one answer).
    Fewer than ``n`` is an error unless ``partial``."""
    from chatreid.instructions import load

    out = []
    for row in load(str(path))[split]:
        if tasks is not None and row["task"] not in tasks:
            continue
        if single_turn and len(row["messages"]) != 2:
            continue
        out.append(row)
        if len(out) == n:
            return out
    if not partial:
        raise ValueError(f"{path}: only {len(out)} {split} rows of tasks {tasks} "
                         f"(single_turn={single_turn}), {n} asked")
    return out


def image_store(root, images) -> Path:
    """An image store of the given PIL images, built by ``chatreid.data.builder.build``: the test's
    files ``root/files/{i}.png`` (lossless), one identity each, ids ``"t/{i}.png"``."""
    from chatreid.data.record import Record
    from chatreid.data.builder import build

    files = Path(root) / "files"
    files.mkdir(parents=True, exist_ok=True)
    records = []
    for i, img in enumerate(images):
        path = files / f"{i}.png"
        img.save(path, format="PNG")
        records.append(Record(path=str(path), pid=i, camid=1, split="train", dataset="t"))
    out = Path(root) / "store"
    build([(records, files)], out, progress=False)
    return out

"""Building the image store (``chatreid.data.store``, which also holds its dataset card and its push
to the Hub) from benchmark readers.

Building streams records through ``Dataset.from_generator``, which writes Arrow batches to disk as
they come, so memory stays bounded whatever the number of images. The original file bytes are
kept (no re-encoding: JPEG stays bit-identical and building is fast); each image is fully decoded
once during the build to reject unreadable or truncated files and to record its size.

Writes are atomic: the dataset is saved to a temporary sibling folder that is renamed into place
only when complete, so an interrupted build never leaves a folder that looks like a store.
Pushing reads the saved store and never writes to it, so a failed push cannot harm it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from PIL import Image as PILImage

from chatreid.atomic import install_dir
from chatreid.data.record import Record
from chatreid.data.store import BUILD_REPORT, ImageStore, dataset_card, features, parse_source

log = logging.getLogger(__name__)



class BadImageError(ValueError):
    """An image file that cannot be read or decoded (the message names the file)."""


@dataclass
class BuildReport:
    """What a build wrote and what it skipped (``skip_bad=True``), with reasons."""

    out: str
    num_images: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    # dataset -> the identity split its reader read (chatreid.data.trials); what trains on the
    # store records it, so the evaluation never scores a split's test people with it
    trials: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"out": self.out, "num_images": self.num_images, "trials": self.trials,
                "num_skipped": len(self.skipped),
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


def relative_path(record: Record, root: str | os.PathLike) -> str:
    """The record's path relative to the dataset ``root``, POSIX separators (part of image_id)."""
    rel = os.path.relpath(record.path, root)
    if rel.startswith(".."):
        raise ValueError(f"{record.path}: not inside dataset root {root}")
    return Path(rel).as_posix()


def read_image(path: str) -> tuple[bytes, int, int]:
    """Read a file's bytes and fully decode it once; return (bytes, width, height).

    ``Image.load()`` decodes every pixel, so truncated JPEGs ("image file is truncated") and
    non-images are caught here rather than at training time.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise BadImageError(f"{path}: cannot read file ({err.strerror or err})") from err
    if not data:
        raise BadImageError(f"{path}: empty file")
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            img.load()
            width, height = img.size
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... for bad files
        raise BadImageError(f"{path}: cannot decode image ({err})") from err
    return data, width, height


def _row(record: Record, rel: str, data: bytes, width: int, height: int) -> dict:
    return {
        "image_id": f"{record.dataset}/{rel}",
        "image": {"bytes": data, "path": rel},
        "dataset": record.dataset,
        "path": rel,
        "pid": int(record.pid),
        "camid": int(record.camid),
        "split": record.split,
        "clothes_id": None if record.clothes_id is None else str(record.clothes_id),
        "modality": record.modality,
        "captions": list(record.captions),
        "attributes": json.dumps(record.attributes, sort_keys=True),
        "width": width,
        "height": height,
    }


def _sources(sources, skipped: list, trials: dict | None = None) -> Iterator[tuple[Record, str]]:
    """Normalise build inputs to (record, relative path) pairs.

    ``sources`` is an iterable of items, each one of: what ``chatreid.data.read`` returns (a
    ``Records`` list, which knows its root); a ``(records, root)`` pair; a ``(name, root,
    options)`` triple or a ``"name:root"`` string (read here with ``chatreid.data.read``).
    Files a reader skipped (``skip_bad=True``) are added to ``skipped``; the identity split of
    each source read with one (``Records.trial``) to ``trials``, by dataset.
    """
    from chatreid import data as chatreid_data

    for item in sources:
        if isinstance(item, str):
            name, root, options = parse_source(item)
            records = chatreid_data.read(name, root, **options)
        elif isinstance(item, chatreid_data.Records):
            records, root = item, item.root
        elif isinstance(item, tuple) and len(item) == 3:
            name, root, options = item
            records = chatreid_data.read(name, root, **(options or {}))
        elif isinstance(item, tuple) and len(item) == 2:
            records, root = item
        else:
            raise ValueError(f"cannot use {item!r} as a store source: expected Records, "
                             "(records, root), (name, root, options) or 'name:root'")
        skipped.extend(getattr(records, "skipped", ()))
        if trials is not None and getattr(records, "trial", None) is not None and len(records):
            trials[records[0].dataset] = records.trial
        for record in records:
            yield record, relative_path(record, root)



def _store_rows(sources, report: BuildReport, *, skip_bad: bool, name: str, progress: bool) -> Iterator[dict]:
    """The store's rows, one an image of ``sources``, each image read and decoded once; counts
    them (and, with ``skip_bad``, the bad images left out) in ``report``."""
    from tqdm.auto import tqdm

    seen: set[str] = set()
    bar = tqdm(desc=f"store {name}", unit="img", disable=not progress)
    try:
        for record, rel in _sources(sources, report.skipped, report.trials):
            iid = f"{record.dataset}/{rel}"
            if iid in seen:
                raise ValueError(f"{record.path}: image id {iid!r} occurs twice in the sources")
            seen.add(iid)
            try:
                data, w, h = read_image(record.path)
            except BadImageError as err:
                if not skip_bad:
                    raise
                report.skipped.append((record.path, str(err)))
                bar.set_postfix(skipped=len(report.skipped))
                continue
            report.num_images += 1
            bar.update(1)
            yield _row(record, rel, data, w, h)
    finally:
        bar.close()


def build(sources, out: str | os.PathLike, *, skip_bad: bool = False, overwrite: bool = False,
          progress: bool = True, writer_batch_size: int = 500,
          max_shard_size: str | int = "500MB") -> BuildReport:
    """Build an image store at ``out`` from ``sources`` (see ``_sources`` for the accepted forms).

    Every image is decoded once: an unreadable one raises ``BadImageError`` naming its path, or,
    with ``skip_bad=True``, is left out and listed (path, reason) in the returned report, in the
    log and in ``out/chatreid_build.json``. A duplicate image id is always an error. ``out`` must
    not exist unless ``overwrite=True``; it appears only once the store is complete.
    """
    import datasets
    from datasets.exceptions import DatasetGenerationError
    from datasets.utils.tqdm import (are_progress_bars_disabled, disable_progress_bars,
                                     enable_progress_bars)

    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (use overwrite=True / --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    # Same parent, so the final rename is atomic and on one filesystem.
    work = out.parent / f".{out.name}.building-{tag}"
    report = BuildReport(out=str(out))

    def generate():
        yield from _store_rows(sources, report, skip_bad=skip_bad, name=out.name, progress=progress)

    # Our own bar counts images and skips; the datasets one would duplicate it.
    bars_were_on = not are_progress_bars_disabled()
    disable_progress_bars()
    try:
        try:
            ds = datasets.Dataset.from_generator(
                generate, features=features(), cache_dir=str(work / "cache"),
                # A fresh fingerprint: no hashing of the sources, and never a stale cache hit.
                fingerprint=f"chatreid-store-{tag}", writer_batch_size=writer_batch_size)
        except DatasetGenerationError as err:
            # datasets wraps errors raised in the generator; surface ours with its path.
            cause = err.__cause__ or err.__context__
            if isinstance(cause, (ValueError, OSError)):
                raise cause from None
            raise
        if len(ds) == 0:
            raise ValueError(f"store {out}: no images to write (all sources empty or skipped)")
        ds.save_to_disk(str(work / "store"), max_shard_size=max_shard_size)
        del ds
        store_dir = work / "store"
        (store_dir / BUILD_REPORT).write_text(json.dumps(report.to_dict(), indent=1))
        store = ImageStore.load(str(store_dir))
        (store_dir / "README.md").write_text(dataset_card(store, title=out.name))
        del store
        install_dir(store_dir, out)  # overwrite: the old store goes only once the new one is in
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if bars_were_on:
            enable_progress_bars()
    for path, reason in report.skipped:
        log.warning("skipped %s", reason)
    if report.skipped:
        log.warning("store %s: skipped %d bad image(s); list in %s", out, len(report.skipped),
                    out / BUILD_REPORT)
    return report

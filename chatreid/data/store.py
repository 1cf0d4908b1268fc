"""The image store: one ``datasets.Dataset`` holding every image once, with its record.

Schema (docs/architecture.md, "The image store"): ``image_id`` (``"{dataset}/{relative path}"``),
``image`` (``Image()``, the file's original encoded bytes), ``dataset``, ``path`` (relative to the
dataset root), ``pid``, ``camid`` (int64), ``split``, ``clothes_id`` (string or null),
``modality``, ``captions`` (list of string), ``attributes`` (JSON string), ``width``, ``height``
(int32).

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
import re
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from PIL import Image as PILImage

from chatreid.data.record import Record
from chatreid.atomic import install_dir
from chatreid.hub import PushError, load_hub_dataset  # noqa: F401 - PushError is part of this API

log = logging.getLogger(__name__)

METADATA_COLUMNS = (
    "image_id", "dataset", "path", "pid", "camid", "split", "clothes_id", "modality",
    "captions", "attributes", "width", "height",
)
COLUMNS = ("image_id", "image") + METADATA_COLUMNS[1:]
# A Hub dataset id: "name" or "owner/name" (letters, digits, "-", "_", ".").
_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")
BUILD_REPORT = "chatreid_build.json"


def features():
    """The store's ``datasets.Features`` (imported lazily: ``datasets`` is slow to import)."""
    import datasets

    return datasets.Features({
        "image_id": datasets.Value("string"),
        "image": datasets.Image(),
        "dataset": datasets.Value("string"),
        "path": datasets.Value("string"),
        "pid": datasets.Value("int64"),
        "camid": datasets.Value("int64"),
        "split": datasets.Value("string"),
        "clothes_id": datasets.Value("string"),
        "modality": datasets.Value("string"),
        "captions": datasets.List(datasets.Value("string")),
        "attributes": datasets.Value("string"),
        "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
    })


class BadImageError(ValueError):
    """An image file that cannot be read or decoded (the message names the file)."""


@dataclass
class BuildReport:
    """What a build wrote and what it skipped (``skip_bad=True``), with reasons."""

    out: str
    num_images: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def to_dict(self) -> dict:
        return {"out": self.out, "num_images": self.num_images,
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


def _sources(sources, skipped: list) -> Iterator[tuple[Record, str]]:
    """Normalise build inputs to (record, relative path) pairs.

    ``sources`` is an iterable of items, each one of: what ``chatreid.data.read`` returns (a
    ``Records`` list, which knows its root); a ``(records, root)`` pair; a ``(name, root,
    options)`` triple or a ``"name:root"`` string (read here with ``chatreid.data.read``).
    Files a reader skipped (``skip_bad=True``) are added to ``skipped``.
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
        for record in records:
            yield record, relative_path(record, root)


def parse_source(text: str) -> tuple[str, str, dict]:
    """``"NAME[,key=value...]:PATH"`` -> (name, path, options), e.g.
    ``"cuhk03,version=detected:/data/cuhk03-np"`` -> ("cuhk03", "/data/cuhk03-np",
    {"version": "detected"}). Integer and true/false values are converted."""
    head, sep, root = text.partition(":")
    name, *pairs = head.split(",")
    if not sep or not name or not root:
        raise ValueError(f"source {text!r}: expected NAME[,key=value...]:PATH, "
                         "e.g. market1501:/data/Market-1501")
    options: dict = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ValueError(f"source {text!r}: option {pair!r} is not key=value")
        low = value.lower()
        options[key] = (int(value) if value.lstrip("-").isdigit() else
                        {"true": True, "false": False}.get(low, value))
    return name, root, options


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
    from tqdm.auto import tqdm

    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (use overwrite=True / --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    # Same parent, so the final rename is atomic and on one filesystem.
    work = out.parent / f".{out.name}.building-{tag}"
    report = BuildReport(out=str(out))
    seen: set[str] = set()

    def generate():
        bar = tqdm(desc=f"store {out.name}", unit="img", disable=not progress)
        try:
            for record, rel in _sources(sources, report.skipped):
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


class ImageStore:
    """Read access to a built store: by image id, fast, without decoding what is not asked for.

    >>> store = ImageStore.load("stores/market")          # or a Hub id, e.g. "me/chatreid-market"
    >>> store.image("market1501/bounding_box_train/0002_c1s1_000451_03.jpg")   # RGB PIL image
    >>> store.metadata()["pid"][:5]                       # columnar, no image bytes touched
    """

    def __init__(self, dataset, source: str = "<memory>"):
        missing = [c for c in COLUMNS if c not in dataset.column_names]
        if missing:
            raise ValueError(f"{source}: not an image store, missing column(s) {missing}")
        self.dataset = dataset
        self.source = source
        self._index: dict[str, int] | None = None
        self._meta: dict[str, list] | None = None
        self._raw = None
        self._meta_view = None

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path_or_repo: str | os.PathLike, *, revision: str | None = None,
             token: str | None = None) -> "ImageStore":
        """Load from a local folder written by ``build`` / ``save_to_disk``, or from a Hub id."""
        import datasets

        text = os.fspath(path_or_repo)
        if os.path.isdir(text):
            try:
                ds = datasets.load_from_disk(text)
            except FileNotFoundError as err:
                raise FileNotFoundError(f"{text}: not a saved dataset folder ({err})") from None
            if isinstance(ds, datasets.DatasetDict):
                ds = _single_split(ds, text)
            return cls(ds, text)
        if os.path.exists(text) or not _REPO_ID.match(text) or text.startswith("."):
            raise FileNotFoundError(f"{text}: no such image store folder (nor a Hub dataset id)")
        ds = load_hub_dataset(text, "image store", revision=revision, token=token)
        if isinstance(ds, datasets.DatasetDict):
            ds = _single_split(ds, text)
        return cls(ds, text)

    # -- lookups -------------------------------------------------------------------------------
    def _row_of(self, iid: str) -> int:
        if self._index is None:
            # Only the id column, through the public API (respects select/shuffle indices).
            ids = (self._meta["image_id"] if self._meta is not None else
                   self.dataset.select_columns(["image_id"]).with_format("arrow")[:]
                   .column("image_id").to_pylist())
            index = {v: i for i, v in enumerate(ids)}
            if len(index) != len(ids):
                dup = next(v for v, n in Counter(ids).items() if n > 1)
                raise ValueError(f"{self.source}: image id {dup!r} occurs more than once")
            self._index = index
        try:
            return self._index[iid]
        except KeyError:
            raise KeyError(f"{iid!r} is not in image store {self.source}") from None

    def __contains__(self, iid) -> bool:
        try:
            self._row_of(iid)
        except KeyError:
            return False
        return True

    def __len__(self) -> int:
        return len(self.dataset)

    def ids(self) -> list[str]:
        return list(self.metadata()["image_id"])

    def image(self, iid: str) -> PILImage.Image:
        """The image as an RGB PIL image (infrared images are stored as the files had them)."""
        row = self._row_of(iid)
        if self._raw is None:
            import datasets

            # Undecoded view of the image column only: we decode exactly one image per call.
            self._raw = self.dataset.select_columns(["image"]).cast_column(
                "image", datasets.Image(decode=False))
        cell = self._raw[row]["image"]
        if cell.get("bytes") is not None:
            img = PILImage.open(io.BytesIO(cell["bytes"]))
        elif cell.get("path"):
            img = PILImage.open(cell["path"])
        else:
            raise ValueError(f"{self.source}: image {iid!r} has neither bytes nor path")
        return img.convert("RGB")

    def record(self, iid: str) -> dict:
        """The metadata of one image as a dict, ``attributes`` decoded from JSON."""
        row = self._row_of(iid)
        if self._meta is not None:
            out = {c: self._meta[c][row] for c in METADATA_COLUMNS}
        else:  # one row read; no need to materialise every column for a single lookup
            if self._meta_view is None:
                self._meta_view = self.dataset.select_columns(list(METADATA_COLUMNS))
            out = dict(self._meta_view[row])
        out["attributes"] = json.loads(out["attributes"]) if out["attributes"] else {}
        return out

    def metadata(self) -> dict[str, list]:
        """Every metadata column as a Python list (columnar), no image bytes read; cached.

        ``attributes`` stays a JSON string here (decode only what you sample).
        """
        if self._meta is None:
            table = self.dataset.select_columns(list(METADATA_COLUMNS)).with_format("arrow")[:]
            self._meta = table.to_pydict()
        return self._meta

    def summary(self) -> dict:
        """Counts per dataset, split, camera and modality (and identities per dataset/split).

        Computed in Arrow (group-by), so it needs no Python objects per row: cheap on millions.
        """
        table = self.dataset.select_columns(["dataset", "split", "camid", "modality", "pid"]) \
            .with_format("arrow")[:]
        return summarize(table)

    # -- the Hub -------------------------------------------------------------------------------
    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    commit_message: str = "Upload ChatReID image store") -> None:
        """Upload the store and a dataset card with its counts. Never writes to the local copy."""
        push_to_hub(self, repo_id, private=private, token=token, commit_message=commit_message)


def _single_split(dsd, where: str):
    if list(dsd) == ["train"] or len(dsd) == 1:
        return dsd[next(iter(dsd))]
    raise ValueError(f"{where}: expected one split in the image store, found {list(dsd)}")


def summarize(table) -> dict:
    """Counts of images per dataset, dataset/split, dataset/camera, dataset/modality, and of
    identities per dataset/split, from a ``pyarrow.Table`` with those metadata columns."""

    def counts(columns, label, agg=([], "count_all"), out_name="count_all"):
        grouped = table.group_by(columns).aggregate([agg]).to_pylist()
        grouped.sort(key=lambda row: tuple(row[c] for c in columns))  # cam2 before cam10
        return {label(row): row[out_name] for row in grouped}

    return {
        "images": table.num_rows,
        "dataset": counts(["dataset"], lambda r: r["dataset"]),
        "split": counts(["dataset", "split"], lambda r: f"{r['dataset']}/{r['split']}"),
        "identities": counts(["dataset", "split"], lambda r: f"{r['dataset']}/{r['split']}",
                             ("pid", "count_distinct"), "pid_count_distinct"),
        "camera": counts(["dataset", "camid"], lambda r: f"{r['dataset']}/cam{r['camid']}"),
        "modality": counts(["dataset", "modality"], lambda r: f"{r['dataset']}/{r['modality']}"),
    }


def format_summary(summary: dict) -> str:
    lines = [f"images: {summary['images']}"]
    for key in ("dataset", "split", "identities", "camera", "modality"):
        lines.append(f"{key}:")
        lines.extend(f"  {k}: {v}" for k, v in summary[key].items())
    return "\n".join(lines)


def dataset_card(store: ImageStore, title: str = "ChatReID image store") -> str:
    """The Markdown body of the dataset card (counts per dataset, split, camera, modality)."""
    s = store.summary()

    def table(name: str, counts: dict) -> str:
        rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items())
        return f"### {name}\n\n| {name.lower()} | images |\n|---|---|\n{rows}\n"

    return (
        f"# {title}\n\n"
        "A ChatReID image store: one row per person image, stored once, with its identity, camera,\n"
        "split, clothes id, modality, captions and attributes (schema: ChatReID "
        "`docs/architecture.md`).\nLoad it with `chatreid.data.store.ImageStore.load(REPO_OR_PATH)` "
        "or `datasets.load_dataset`.\n\n"
        f"Images: {s['images']}\n\n"
        + table("Dataset", s["dataset"]) + "\n"
        + table("Split", s["split"]) + "\n"
        + table("Identities", s["identities"]).replace("| images |", "| identities |") + "\n"
        + table("Camera", s["camera"]) + "\n"
        + table("Modality", s["modality"])
        + "\nThe images keep the licences of the benchmarks they come from; check each one before "
        "redistributing.\n"
    )


def push_to_hub(store: ImageStore, repo_id: str, *, private: bool | None = None,
                token: str | None = None, commit_message: str = "Upload ChatReID image store"):
    """Push ``store.dataset`` and then its card. Raises ``PushError`` saying the local copy is
    intact (the local folder is only ever read here)."""
    from huggingface_hub import DatasetCard

    where = store.source
    try:
        store.dataset.push_to_hub(repo_id, private=private, token=token,
                                  commit_message=commit_message)
        # Keep the YAML header datasets wrote (features, splits); replace the body with ours.
        card = DatasetCard.load(repo_id, repo_type="dataset", token=token)
        card.text = dataset_card(store, title=repo_id)
        card.push_to_hub(repo_id, token=token, repo_type="dataset",
                         commit_message="Dataset card: counts per dataset, split, camera, modality")
    except Exception as err:
        first = (str(err).splitlines() or [""])[0]
        raise PushError(f"push of image store {where} to {repo_id!r} failed "
                        f"({type(err).__name__}: {first}); the local store at {where} is intact"
                        ) from err


# -- command line ------------------------------------------------------------------------------
def register(subparsers) -> None:
    p = subparsers.add_parser("store", help="build, inspect and publish the image store")
    sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build an image store from benchmark folders")
    b.add_argument("--source", action="append", required=True, metavar="NAME[,K=V...]:PATH",
                   help="a reader name, its options and the dataset root, e.g. "
                        "market1501:/data/Market-1501 or cuhk03,version=detected:/data/cuhk03-np "
                        "(repeatable). Readers: market1501, msmt17, cuhk03, ltcc, prcc, sysu_mm01, "
                        "regdb, cuhk_pedes, icfg_pedes, rstpreid, synthpeds")
    b.add_argument("--out", required=True, help="folder to write (must not exist)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")
    b.add_argument("--skip-bad", action="store_true",
                   help="leave out bad/unreadable files and list them instead of stopping")
    b.add_argument("--push-to-hub", metavar="REPO", help="then push to this Hub dataset repo")
    b.add_argument("--private", action="store_true", help="make the pushed repo private")
    b.set_defaults(func=_cmd_build)
    i = sub.add_parser("info", help="counts per dataset, split, camera and modality")
    i.add_argument("store", metavar="PATH_OR_REPO")
    i.set_defaults(func=_cmd_info)


def _cmd_build(args) -> int:
    import sys

    sources = []
    for text in args.source:
        name, root, options = parse_source(text)
        if args.skip_bad:
            options.setdefault("skip_bad", True)
        sources.append((name, root, options))
    try:
        report = build(sources, args.out, skip_bad=args.skip_bad, overwrite=args.overwrite)
    except FileExistsError as err:  # not among the CLI's generic user errors
        print(f"chatreid store build: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {report.num_images} images to {report.out}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} bad image(s):", file=sys.stderr)
        for path, reason in report.skipped:
            print(f"  {reason}", file=sys.stderr)
    print(format_summary(ImageStore.load(report.out).summary()))
    if args.push_to_hub:
        try:
            ImageStore.load(report.out).push_to_hub(args.push_to_hub, private=args.private or None)
        except PushError as err:
            print(f"chatreid store build: error: {err}", file=sys.stderr)
            return 1
        print(f"pushed to https://huggingface.co/datasets/{args.push_to_hub}")
    return 0


def _cmd_info(args) -> int:
    print(format_summary(ImageStore.load(args.store).summary()))
    return 0

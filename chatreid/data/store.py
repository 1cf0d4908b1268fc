"""The image store: one ``datasets.Dataset`` holding every image once, with its record; this
module reads it (``ImageStore``), writes its card and pushes it; ``chatreid.data.builder`` writes it
(and imports this module, never the other way round).

Schema (docs/architecture.md, "The image store"): ``image_id`` (``"{dataset}/{relative path}"``),
``image`` (``Image()``, the file's original encoded bytes), ``dataset``, ``path`` (relative to the
dataset root), ``pid``, ``camid`` (int64), ``split``, ``clothes_id`` (string or null),
``modality``, ``captions`` (list of string), ``attributes`` (JSON string), ``width``, ``height``
(int32).

A store loads from a folder written by the builder or from a Hub dataset id. Pushing
(``ImageStore.push_to_hub``) reads the saved store and never writes to it, so a failed push cannot
harm it.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter

from PIL import Image as PILImage

from chatreid.hub import check_local, load_hub_dataset, push_dataset

METADATA_COLUMNS = (
    "image_id", "dataset", "path", "pid", "camid", "split", "clothes_id", "modality",
    "captions", "attributes", "width", "height",
)
COLUMNS = ("image_id", "image") + METADATA_COLUMNS[1:]
# The build record the builder writes beside a local store (``ImageStore.trials`` reads it).
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
        if check_local(text, "image store", hint="build one with `chatreid store build`"):
            raise FileNotFoundError(f"{text}: not an image store folder (a file)")
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

    def trials(self) -> dict[str, int] | None:
        """The identity split each split benchmark of the store was read with (``{"regdb": 3}``;
        ``chatreid.data.trials``), from the build record of a local store; None where there is
        no build record (a Hub store, or one saved by other means)."""
        path = os.path.join(str(self.source), BUILD_REPORT)
        if not os.path.isfile(path):
            return None
        record = json.loads(open(path).read())
        return dict(record["trials"]) if "trials" in record else None  # built before stores recorded it

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
        """Upload the store and a dataset card with its counts. Never writes to the local copy;
        ``chatreid.hub.PushError`` on failure."""
        push_store(self, repo_id, private=private, token=token, commit_message=commit_message)


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


# -- the card and the push ----------------------------------------------------------------------

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


def push_store(store: ImageStore, repo_id: str, *, private: bool | None = None,
               token: str | None = None, commit_message: str = "Upload ChatReID image store") -> str:
    """Push ``store.dataset`` and then its card (``chatreid.hub.push_dataset``): ``PushError`` on
    failure, saying the local copy is intact (the local folder is only ever read here)."""
    return push_dataset(store.dataset, repo_id, local=store.source, what="image store",
                        card=dataset_card(store, title=repo_id), private=private, token=token,
                        commit_message=commit_message,
                        card_message="Dataset card: counts per dataset, split, camera, modality")

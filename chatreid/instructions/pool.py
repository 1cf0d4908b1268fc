"""The images an instruction split may use, as numpy arrays for fast vectorised sampling.

Only ``train``-split images of each benchmark enter a pool (never query/gallery). Identities
(``(dataset, pid)``) are split between the ``train`` and ``validation`` instruction splits, per
dataset, deterministically by seed, so no identity appears in both.

Images are sorted by (dataset, identity, image_id): an identity's images are one contiguous range
(``id_start``, ``id_count``), and so are a dataset's (``ds_start``, ``ds_end``); sampling "another
image of the same person" or "a distractor from the same benchmark" is an offset into a range.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from chatreid.data.attributes import VOCAB, to_text

ATTR_KEYS = tuple(VOCAB)
SPLITS = ("train", "validation")


def columns(meta) -> dict[str, list]:
    """The store's metadata as columns, whether ``metadata()`` gave columns or a list of rows."""
    if isinstance(meta, dict):
        return meta
    meta = list(meta)
    return {k: [row[k] for row in meta] for k in (meta[0] if meta else {})}


def split_identities(meta: dict[str, list], val_fraction: float, seed: int) -> dict[tuple, str]:
    """(dataset, pid) -> "train" / "validation" for every identity with ``train``-split images.

    Per dataset, ``round(val_fraction * identities)`` identities, chosen by a seeded permutation of
    the sorted pids, go to validation: every benchmark is represented in both splits when it can be.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_ds: dict[str, set] = {}
    for d, p, s in zip(meta["dataset"], meta["pid"], meta["split"]):
        if s == "train":
            by_ds.setdefault(d, set()).add(int(p))
    out: dict[tuple, str] = {}
    for i, d in enumerate(sorted(by_ds)):
        pids = np.array(sorted(by_ds[d]))
        rng = np.random.default_rng([seed, 7, i])
        n_val = int(round(val_fraction * len(pids)))
        if n_val == 1 and len(pids) >= 4:
            n_val = 2  # one identity alone cannot make a matching task (no distractors)
        val = set(rng.permutation(pids)[:n_val].tolist())
        for p in pids.tolist():
            out[(d, p)] = "validation" if p in val else "train"
    return out


@dataclass
class Pool:
    image_id: np.ndarray      # object (str), sorted by (dataset, identity, image_id)
    dataset_names: list[str]
    ds: np.ndarray            # int32 index into dataset_names
    pid: np.ndarray           # int64, as the benchmark numbers it
    ident: np.ndarray         # int32, identity code within this pool (contiguous per identity)
    infrared: np.ndarray      # bool
    clothes: np.ndarray       # int32 code of (identity, clothes_id); -1 where unknown
    width: np.ndarray
    height: np.ndarray
    attrs: np.ndarray         # int8 (n, len(ATTR_KEYS)), value index in VOCAB, -1 = not annotated
    attr_sig: np.ndarray      # int32 code of the whole attribute dict; -1 = none annotated
    text_start: np.ndarray    # int64 CSR over text_code: this image's descriptions
    text_count: np.ndarray    # int32 (0: no text)
    text_code: np.ndarray     # int32 index into texts
    text_src: np.ndarray      # int16: caption index in the store row, -1 = attributes rendered
    texts: list[str]
    id_start: np.ndarray      # per identity
    id_count: np.ndarray
    ds_start: np.ndarray      # per dataset
    ds_end: np.ndarray

    def __len__(self) -> int:
        return len(self.image_id)

    def attributes(self, i: int) -> dict:
        return {k: VOCAB[k][v] for k, v in zip(ATTR_KEYS, self.attrs[i].tolist()) if v >= 0}

    def text_keys(self) -> np.ndarray:
        """Sorted int64 keys image * len(texts) + text code, for "does image d say text t?"."""
        n_t = max(len(self.texts), 1)
        img = np.repeat(np.arange(len(self), dtype=np.int64), self.text_count)
        return np.sort(img * n_t + self.text_code.astype(np.int64))


def encode_attributes(text: str, where: str) -> tuple[int, ...]:
    try:
        a = json.loads(text) if text else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: attributes is not JSON ({err})") from None
    codes = []
    for k in ATTR_KEYS:
        if k in a:
            if a[k] not in VOCAB[k]:
                raise ValueError(f"{where}: attribute {k!r} has value {a[k]!r}; allowed {VOCAB[k]}")
            codes.append(VOCAB[k].index(a[k]))
        else:
            codes.append(-1)
    unknown = set(a) - set(ATTR_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown attribute(s) {sorted(unknown)}")
    return tuple(codes)


def build_pool(meta, split: str, assignment: dict[tuple, str],
               keep: np.ndarray | None = None) -> Pool:
    """The pool of instruction split ``split`` ("train"/"validation") from store metadata.

    ``keep`` (bool per metadata row) removes images before anything else (stage 1's filters).
    """
    meta = columns(meta)
    for col in ("image_id", "dataset", "pid", "split", "clothes_id", "modality", "captions",
                "attributes", "width", "height"):
        if col not in meta:
            raise ValueError(f"store metadata has no column {col!r}")
    n_all = len(meta["image_id"])
    rows = [i for i in range(n_all)
            if meta["split"][i] == "train"
            and assignment.get((meta["dataset"][i], int(meta["pid"][i]))) == split
            and (keep is None or keep[i])]
    dataset_names = sorted({meta["dataset"][i] for i in rows})
    ds_index = {d: k for k, d in enumerate(dataset_names)}
    rows.sort(key=lambda i: (ds_index[meta["dataset"][i]], int(meta["pid"][i]), meta["image_id"][i]))
    n = len(rows)

    image_id = np.array([meta["image_id"][i] for i in rows], dtype=object)
    ds = np.array([ds_index[meta["dataset"][i]] for i in rows], dtype=np.int32)
    pid = np.array([int(meta["pid"][i]) for i in rows], dtype=np.int64)
    key = ds.astype(np.int64) * (1 << 40) + (pid - pid.min() if n else pid)
    change = np.ones(n, dtype=bool)
    change[1:] = key[1:] != key[:-1]
    ident = (np.cumsum(change) - 1).astype(np.int32)
    id_start = np.flatnonzero(change).astype(np.int64)
    id_count = np.diff(np.append(id_start, n)).astype(np.int32)
    infrared = np.array([meta["modality"][i] == "infrared" for i in rows], dtype=bool)
    clothes_keys = [(int(ident[j]), meta["clothes_id"][i]) if meta["clothes_id"][i] is not None
                    else None for j, i in enumerate(rows)]
    codes: dict = {}
    clothes = np.array([-1 if c is None else codes.setdefault(c, len(codes)) for c in clothes_keys],
                       dtype=np.int32)

    attrs, sig = _attribute_codes(meta, rows)
    texts, text_start, counts, code_list, src_list = _descriptions(meta, rows, attrs)

    ds_start = np.searchsorted(ds, np.arange(len(dataset_names)), side="left").astype(np.int64)
    ds_end = np.searchsorted(ds, np.arange(len(dataset_names)), side="right").astype(np.int64)
    return Pool(
        image_id=image_id, dataset_names=dataset_names, ds=ds, pid=pid, ident=ident,
        infrared=infrared, clothes=clothes,
        width=np.array([int(meta["width"][i]) for i in rows], dtype=np.int32),
        height=np.array([int(meta["height"][i]) for i in rows], dtype=np.int32),
        attrs=attrs, attr_sig=sig, text_start=text_start, text_count=counts,
        text_code=np.array(code_list, dtype=np.int32), text_src=np.array(src_list, dtype=np.int16),
        texts=texts, id_start=id_start, id_count=id_count, ds_start=ds_start, ds_end=ds_end)


def _attribute_codes(meta, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(attribute codes per image, -1 unknown; one signature per distinct attribute set, -1 none)."""
    n = len(rows)
    # many images share one JSON string: decode each distinct string once
    cache: dict[str, tuple] = {}
    attrs = np.full((n, len(ATTR_KEYS)), -1, dtype=np.int8)
    for j, i in enumerate(rows):
        s = meta["attributes"][i] or ""
        if s not in cache:
            cache[s] = encode_attributes(s, f"store image {meta['image_id'][i]!r}")
        attrs[j] = cache[s]
    if n:
        _, sig = np.unique(attrs, axis=0, return_inverse=True)
        sig = sig.reshape(-1).astype(np.int32)
        sig[(attrs < 0).all(axis=1)] = -1
    else:
        sig = np.zeros(0, dtype=np.int32)
    return attrs, sig


def _descriptions(meta, rows: list[int], attrs: np.ndarray):
    """Each image's descriptions, as codes into one list of distinct texts: its own captions,
    else its attributes rendered to text. Returns (texts, start, count, codes, sources)."""
    n = len(rows)
    text_index: dict[str, int] = {}
    counts = np.zeros(n, dtype=np.int32)
    code_list: list[int] = []
    src_list: list[int] = []
    rendered: dict[tuple, str] = {}
    for j, i in enumerate(rows):
        caps = [c for c in (meta["captions"][i] or []) if c and c.strip()]
        if caps:
            items = [(c, k) for k, c in enumerate(meta["captions"][i] or []) if c and c.strip()]
        else:
            t = tuple(attrs[j].tolist())
            if t not in rendered:
                rendered[t] = to_text({k: VOCAB[k][v] for k, v in zip(ATTR_KEYS, t) if v >= 0})
            items = [(rendered[t], -1)] if rendered[t] else []
        counts[j] = len(items)
        for text, src in items:
            code_list.append(text_index.setdefault(text, len(text_index)))
            src_list.append(src)
    texts = list(text_index)
    text_start = np.zeros(n, dtype=np.int64)
    if n:
        text_start[1:] = np.cumsum(counts)[:-1]
    return texts, text_start, counts, code_list, src_list

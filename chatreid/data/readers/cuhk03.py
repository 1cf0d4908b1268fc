"""CUHK03 (Li et al., CVPR 2014), labeled and detected boxes, in both of its protocols: the new
protocol (Zhong et al., CVPR 2017; the CUHK03-NP folders) and the classic 20 random splits of
the original ``cuhk-03.mat`` release, read as torchreid reads them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from chatreid.data.readers._common import Collector, check_choice, require_dir, require_file
from chatreid.data.readers.market1501 import FOLDERS, walk_market_layout

VERSIONS = ("labeled", "detected")
LAYOUTS = ("auto", "np", "classic")
CLASSIC_SPLITS = 20
# torchreid looks for the original release unzipped as cuhk03_release/cuhk-03.mat; accept the
# file at the root too.
MAT_PLACES = ("cuhk-03.mat", "cuhk03_release/cuhk-03.mat")


def find_mat(root) -> Path | None:
    root = Path(root)
    return next((root / p for p in MAT_PLACES if (root / p).is_file()), None)


def detect_layout(root) -> str:
    """"np" (``labeled/`` or ``detected/`` folders) or "classic" (``cuhk-03.mat``)."""
    root = Path(root)
    np_here = any((root / v).is_dir() for v in VERSIONS)
    mat = find_mat(root)
    if np_here and mat is not None:
        raise ValueError(f"{root}: holds both CUHK03-NP folders and {mat.relative_to(root)}; "
                         "choose one with layout='np' or layout='classic' (eval/run.py: "
                         "--cuhk03-layout)")
    if mat is not None:
        return "classic"
    if np_here:
        return "np"
    raise FileNotFoundError(f"{root}: neither the CUHK03-NP layout (labeled/ or detected/ with "
                            "bounding_box_train/, query/, bounding_box_test/) nor the original "
                            "release (cuhk-03.mat)")


def read_cuhk03(root, *, version: str = "labeled", layout: str = "auto", split: int = 0,
                extract_to=None, skip_bad: bool = False, dataset: str = "cuhk03"):
    """CUHK03 at ``root``, boxes ``version`` ("labeled" or "detected"), in ``layout``:

    ``"np"`` (the new protocol): ``labeled/`` or ``detected/``, each with
    ``bounding_box_train/`` (767 ids), ``query/`` and ``bounding_box_test/`` (700 ids); names
    ``{pid:04d}_c{cam}_{n}.png``, cameras 1..2 and pids as written, no junk or distractor ids.
    Paths stay relative to ``root``, so labeled and detected images get distinct store ids.

    ``"classic"``: the original release, ``cuhk-03.mat`` (MATLAB v7.3, read with h5py; at the
    root or in ``cuhk03_release/``), with its 20 random test splits (``split`` 0..19, 100 test
    identities each; the other 1,367 train). As torchreid does, the images are written out once
    as PNG files, ``images_{version}/{pair}_{person:03d}_{view}_{n:02d}.png`` under
    ``extract_to`` (default ``root``), then reused. pid = the identity's 1-based position in the
    file (camera pair 1's people first: 1..1467, the numbering CUHK03-NP uses too); camid =
    the view (1 or 2). The test images are ``gallery`` records and every one of them is also a
    query (torchreid's classic splits: query = gallery = test); the evaluation harness builds
    the queries from them, and the protocol's same-identity-same-camera junk rule removes each
    query's own image from its ranking.

    ``"auto"`` takes whichever the folder holds, and refuses a folder holding both.
    """
    check_choice("version", version, VERSIONS)
    check_choice("layout", layout, LAYOUTS)
    base = require_dir(root, "CUHK03 dataset root")
    if layout == "auto":
        layout = detect_layout(base)
    if layout == "np":
        folder = require_dir(base / version, f"CUHK03-NP {version}/ folder")
        records = walk_market_layout(folder, dataset, max_pid=1467, max_cam=2, folders=FOLDERS,
                                     keep_junk=False, keep_distractors=False,
                                     skip_bad=skip_bad).result()
        records.root = str(base.absolute())
        return records
    if not (isinstance(split, int) and 0 <= split < CLASSIC_SPLITS):
        raise ValueError(f"option split={split!r}: expected 0..{CLASSIC_SPLITS - 1} "
                         "(the classic protocol's 20 random splits)")
    mat = find_mat(base)
    if mat is None:
        require_file(base / MAT_PLACES[0], "CUHK03 original release file")
    return _read_classic(base, mat, version, split, Path(extract_to or base), skip_bad, dataset)


# -- the classic release ---------------------------------------------------------------------
def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading cuhk-03.mat (a MATLAB v7.3 file) needs h5py: "
                          "pip install h5py") from None
    return h5py


def read_classic_mat(mat_path, version: str):
    """Structure of ``cuhk-03.mat`` without decoding images: (identities, test splits).

    identities: one ``(pair, person, [(view, n, image reference), ...])`` per identity in file
    order (pair and person 1-based, n = 1..10 the cell's column, views 1 for n <= 5 else 2;
    empty cells left out). test splits: 20 sets of (pair, person). The file holds
    ``labeled`` and ``detected`` (1x5 cells, one per camera pair, of persons x 10 image cells)
    and ``testsets`` (1x20 cells of 100x2 [pair, person]); h5py sees MATLAB arrays transposed.
    Returns the open h5py file too: the references are read through it.
    """
    h5py = _h5py()
    try:
        f = h5py.File(mat_path, "r")
    except OSError as err:
        raise ValueError(f"{mat_path}: not a readable MATLAB v7.3 (HDF5) file ({err})") from None
    for key in (version, "testsets"):
        if key not in f:
            f.close()
            raise ValueError(f"{mat_path}: no '{key}' cell array (expected 'labeled', "
                             "'detected' and 'testsets')")

    def deref(ref, what):
        try:
            return f[ref]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{mat_path}: {what}: not a valid object reference ({err})") from None

    identities = []
    pairs = f[version][()].ravel()
    for c, pair_ref in enumerate(pairs, 1):
        cells = deref(pair_ref, f"{version} camera pair {c}")[()].T  # persons x 10
        if cells.ndim != 2 or h5py.check_ref_dtype(cells.dtype) is None:
            raise ValueError(f"{mat_path}: {version} camera pair {c}: expected a persons x 10 "
                             f"cell array, got shape {cells.shape}")
        for p in range(cells.shape[0]):
            shots = []
            for j in range(cells.shape[1]):
                shape = deref(cells[p, j], f"{version} pair {c} person {p + 1} image {j + 1}").shape
                if len(shape) == 3 and 0 not in shape:  # MATLAB stores an empty cell as [0 0]
                    shots.append((1 if j < 5 else 2, j + 1, cells[p, j]))
            identities.append((c, p + 1, shots))
    known = {(c, p) for c, p, _ in identities}
    splits = []
    for s, ref in enumerate(f["testsets"][()].ravel()):
        arr = deref(ref, f"testsets split {s}")[()].T
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"{mat_path}: testsets split {s}: expected N x 2 [pair, person], "
                             f"got shape {arr.shape}")
        test = {(int(c), int(p)) for c, p in arr}
        if not test <= known:
            c, p = sorted(test - known)[0]
            raise ValueError(f"{mat_path}: testsets split {s} names camera pair {c} person {p}, "
                             f"which {version} does not hold")
        splits.append(test)
    if len(splits) != CLASSIC_SPLITS:
        raise ValueError(f"{mat_path}: testsets holds {len(splits)} splits, expected "
                         f"{CLASSIC_SPLITS}")
    return f, identities, splits


def image_name(pair: int, person: int, view: int, n: int) -> str:
    return f"{pair}_{person:03d}_{view}_{n:02d}.png"  # torchreid's extracted names


def _read_classic(base: Path, mat_path: Path, version: str, split: int, extract_to: Path,
                  skip_bad: bool, dataset: str):
    f, identities, splits = read_classic_mat(mat_path, version)
    try:
        folder = extract_to / f"images_{version}"
        if folder.is_dir():
            missing = [image_name(c, p, v, n) for c, p, shots in identities for v, n, _ in shots
                       if not (folder / image_name(c, p, v, n)).is_file()]
            if missing:
                raise ValueError(f"{folder}: {len(missing)} image(s) of {mat_path.name} missing, "
                                 f"e.g. {missing[0]} (an interrupted extraction? delete the folder "
                                 "to extract again)")
        else:
            _extract(f, mat_path, identities, version, folder)
    finally:
        f.close()
    out = Collector(base, dataset, skip_bad)
    test = splits[split]
    for number, (c, p, shots) in enumerate(identities, 1):
        if not shots:
            out.bad(f"{mat_path}:{version}[{c}][{p}]", "identity has no image")
            continue
        part = "gallery" if (c, p) in test else "train"
        for view, n, _ in shots:
            out.add(folder / image_name(c, p, view, n), number, view, part)
    records = out.result()
    records.trial = split  # the store, and what trains on it, record which split this is
    return records


def _extract(f, mat_path: Path, identities, version: str, folder: Path) -> None:
    """Write every image as PNG into a temporary folder beside ``folder``, then rename it into
    place: a present ``folder`` is always a finished extraction."""
    import numpy as np
    from PIL import Image

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        for c, p, shots in identities:
            for view, n, ref in shots:
                arr = f[ref][()].T  # MATLAB H x W x 3, seen transposed
                if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
                    raise ValueError(f"{mat_path}: {version} pair {c} person {p} image {n}: "
                                     f"expected H x W x 3 uint8, got {arr.shape} {arr.dtype}")
                Image.fromarray(np.ascontiguousarray(arr), "RGB").save(
                    tmp / image_name(c, p, view, n), format="PNG")
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

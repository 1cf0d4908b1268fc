"""Market-1501 (Zheng et al., ICCV 2015), read as torchreid reads it."""

from __future__ import annotations

import re
from pathlib import Path

from chatreid.data.attributes import MARKET_MAT_FIELDS, from_market_codes
from chatreid.data.readers._common import Collector, image_files, require_dir

# torchreid's pattern: "0002_c1s1_000451_03.jpg" -> pid 2, camera 1; junk images are "-1_c..".
NAME = re.compile(r"^([-\d]+)_c(\d)")
FOLDERS = (("bounding_box_train", "train"), ("query", "query"), ("bounding_box_test", "gallery"))
ATTRIBUTE_FILE = Path("Market-1501_Attribute") / "market_attribute.mat"


def read_market1501(root, *, keep_junk: bool = False, keep_distractors: bool = True,
                    attributes="auto", skip_bad: bool = False, dataset: str = "market1501"):
    """Market-1501 at ``root`` (the folder holding ``bounding_box_train/``, ``query/``,
    ``bounding_box_test/``).

    Conventions (torchreid): file names ``{pid}_c{cam}s{seq}_{frame}_{box}.jpg``; ``pid`` as
    written (0001..1501), ``camid`` as written (1..6, not torchreid's 0-based index). Junk
    images (pid -1) are dropped unless ``keep_junk=True``; distractors (pid 0, gallery only) are
    kept, as torchreid keeps them, unless ``keep_distractors=False``. No relabelling: train pids
    stay the benchmark's own.

    ``attributes``: "auto" attaches ``Market-1501_Attribute/market_attribute.mat`` (Lin et al.)
    if it exists under ``root``; True requires it; False skips it; a path names the .mat file.
    Attributes are per identity: every image of an annotated pid gets them (VOCAB form).
    ``skip_bad``: unrecognised image names are listed in ``records.skipped`` instead of raising.
    """
    root = require_dir(root, "Market-1501 dataset root")
    out = walk_market_layout(root, dataset, max_pid=1501, max_cam=6, keep_junk=keep_junk,
                             keep_distractors=keep_distractors, skip_bad=skip_bad)
    mat = None
    if attributes is True or attributes == "auto":
        mat = root / ATTRIBUTE_FILE
        if not mat.is_file():
            if attributes is True:
                raise FileNotFoundError(f"{mat}: missing Market-1501 attribute file")
            mat = None
    elif attributes:
        mat = Path(attributes)
        if not mat.is_file():
            raise FileNotFoundError(f"{mat}: missing Market-1501 attribute file")
    if mat is not None:
        table = read_market_attributes(mat)
        for record in out.records:
            if record.pid in table:
                record.attributes = dict(table[record.pid])
    return out.result()


def walk_market_layout(root, dataset: str, *, max_pid: int, max_cam: int, folders=FOLDERS,
                       keep_junk: bool = False, keep_distractors: bool = True,
                       skip_bad: bool = False) -> Collector:
    """The walk every Market-style layout shares (Market-1501, CUHK03-NP, SynthPeds' market
    layout): each ``(folder, split)`` of ``folders`` under ``root`` holds images named
    ``{pid}_c{cam}...``; pid -1 is junk, 0 a distractor, 1..``max_pid`` a person; cameras are
    1..``max_cam``. A name outside those ranges is bad input (``skip_bad`` lists it instead).
    Returns the ``Collector``, so a caller can attach more before ``.result()``.
    """
    root = Path(root)
    out = Collector(root, dataset, skip_bad)
    for folder, split in folders:
        for path in image_files(require_dir(root / folder, f"{folder}/ folder")):
            m = NAME.match(path.name)
            if not m:
                out.bad(path, "file name does not match '{pid}_c{camera}...' (Market-1501 layout)")
                continue
            pid, cam = int(m.group(1)), int(m.group(2))
            if not (-1 <= pid <= max_pid and 1 <= cam <= max_cam):
                out.bad(path, f"pid {pid} or camera {cam} outside the benchmark's range")
                continue
            if pid == -1 and not keep_junk:
                continue  # junk boxes: excluded by the protocol, as torchreid does
            if pid == 0 and not keep_distractors:
                continue
            out.add(path, pid, cam, split)
    return out


def read_market_attributes(path) -> dict[int, dict]:
    """``market_attribute.mat`` -> {pid: attributes in VOCAB form}, train and test identities.

    The file holds a struct ``market_attribute`` with ``train`` and ``test`` structs; each has one
    1xN code array per attribute (27 fields) and ``image_index``, the N identity strings ("0002").
    """
    import numpy as np
    from scipy.io import loadmat

    try:
        top = loadmat(str(path))["market_attribute"][0, 0]
    except Exception as err:
        raise ValueError(f"{path}: not a readable market_attribute.mat ({err})") from err
    table: dict[int, dict] = {}
    for split in ("train", "test"):
        try:
            part = top[split][0, 0]
        except (ValueError, KeyError, IndexError) as err:
            raise ValueError(f"{path}: no '{split}' struct in market_attribute") from err
        names = set(part.dtype.names or ())
        missing = [f for f in MARKET_MAT_FIELDS + ("image_index",) if f not in names]
        if missing:
            raise ValueError(f"{path}: market_attribute.{split} lacks field(s) {missing}")
        ids = [str(np.ravel(x)[0]) for x in np.ravel(part["image_index"])]
        columns = {f: np.ravel(part[f]) for f in MARKET_MAT_FIELDS}
        for f, col in columns.items():
            if len(col) != len(ids):
                raise ValueError(f"{path}: market_attribute.{split}.{f} has {len(col)} entries "
                                 f"for {len(ids)} identities")
        for i, pid_text in enumerate(ids):
            codes = {f: int(columns[f][i]) for f in MARKET_MAT_FIELDS}
            try:
                table[int(pid_text)] = from_market_codes(codes)
            except ValueError as err:
                raise ValueError(f"{path}: {split} identity {pid_text}: {err}") from err
    return table

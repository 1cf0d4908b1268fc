"""MSMT17 (Wei et al., CVPR 2018), V1 and V2, read as torchreid reads it."""

from __future__ import annotations

import re

from chatreid.data.readers._common import Collector, read_lines, require_dir

# Image names: "{pid:04d}_{index:03d}_{cam:02d}_{date}{time}_{frame}_{n}.jpg"; the camera is the
# third underscore field (torchreid: int(img_path.split('_')[2])).
NAME = re.compile(r"^(\d{4})_\d+_(\d{2})_[^/]*\.jpg$")
VERSIONS = {1: ("train", "test"), 2: ("mask_train_v2", "mask_test_v2")}


def read_msmt17(root, *, version: int | None = None, include_val: bool = False,
                skip_bad: bool = False, dataset: str = "msmt17"):
    """MSMT17 at ``root`` (the ``MSMT17_V1`` or ``MSMT17_V2`` folder).

    Layout: ``train/`` and ``test/`` (V2: ``mask_train_v2/``, ``mask_test_v2/``) with one folder
    per identity, and the list files ``list_train.txt``, ``list_val.txt``, ``list_query.txt``,
    ``list_gallery.txt`` ("{pid folder}/{image name} {pid}" per line). ``version`` 1 or 2, or None
    to detect it from the folders.

    Conventions (torchreid): pid is the list file's label; camid is the image name's third field
    (1..15, kept 1-based). Train and test identities are numbered independently (train 0..1040,
    test 0..3059), so a pid is only meaningful together with its split. ``list_val.txt`` images
    are held out, as torchreid does by default; ``include_val=True`` adds them to ``train``.
    Listed images must exist (missing ones are errors, or skipped with ``skip_bad``).
    """
    root = require_dir(root, "MSMT17 dataset root")
    if version is None:
        found = [v for v, (train, _) in VERSIONS.items() if (root / train).is_dir()]
        if len(found) != 1:
            raise FileNotFoundError(
                f"{root}: cannot tell MSMT17 V1 (train/, test/) from V2 (mask_train_v2/, "
                f"mask_test_v2/): found {['V%d' % v for v in found] or 'neither'}; pass version=")
        version = found[0]
    if version not in VERSIONS:
        raise ValueError(f"option version={version!r}: expected 1 or 2")
    train_dir, test_dir = (require_dir(root / d, f"MSMT17 V{version} {d}/ folder")
                           for d in VERSIONS[version])
    out = Collector(root, dataset, skip_bad)
    lists = [("list_train.txt", train_dir, "train")]
    if include_val:
        lists.append(("list_val.txt", train_dir, "train"))
    lists += [("list_query.txt", test_dir, "query"), ("list_gallery.txt", test_dir, "gallery")]
    for list_name, folder, split in lists:
        list_path = root / list_name
        for n, line in enumerate(read_lines(list_path), 1):
            where = f"{list_path}:{n}"
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                out.bad(where, f"expected '<image path> <pid>', got {line!r}")
                continue
            rel, pid = parts[0], int(parts[1])
            m = NAME.match(rel.split("/")[-1])
            if not m:
                out.bad(where, f"image name {rel!r} does not match MSMT17's "
                               "'{pid}_{n}_{camera}_{time}_{frame}_{n}.jpg'")
                continue
            out.add(folder / rel, pid, int(m.group(2)), split, check_exists=True)
    return out.result()

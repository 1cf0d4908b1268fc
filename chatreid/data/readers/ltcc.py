"""LTCC, long-term cloth-changing Re-ID (Qian et al., ACCV 2020), read as CAL reads it."""

from __future__ import annotations

import re

from chatreid.data.readers._common import Collector, image_files, require_dir

# "{pid:03d}_{clothes}_c{cam}_{frame}.png"; CAL: r'(\d+)_(\d+)_c(\d+)' and clothes r'(\w+)_c'.
NAME = re.compile(r"^(\d+)_(\d+)_c(\d+)_")
FOLDERS = (("train", "train"), ("query", "query"), ("test", "gallery"))


def read_ltcc(root, *, skip_bad: bool = False, dataset: str = "ltcc"):
    """LTCC at ``root`` (the ``LTCC_ReID`` folder: ``train/``, ``query/``, ``test/``).

    Conventions (CAL / Simple-CCReID): names ``{pid}_{clothes}_c{cam}_{frame}.png``; ``test/`` is
    the gallery; camid as written (1..12, kept 1-based); pid as written; ``clothes_id`` is
    "{pid}_{clothes}" exactly as the name writes them (e.g. "001_2"), unique in the dataset.
    The standard and cloth-changing test settings differ only in which gallery images are
    discarded per query (same camera / same clothes): that belongs to the evaluation protocol.
    """
    root = require_dir(root, "LTCC dataset root")
    out = Collector(root, dataset, skip_bad)
    for folder, split in FOLDERS:
        for path in image_files(require_dir(root / folder, f"LTCC {folder}/ folder")):
            m = NAME.match(path.name)
            if not m:
                out.bad(path, "file name does not match LTCC's '{pid}_{clothes}_c{camera}_...'")
                continue
            pid_text, clothes, cam = m.groups()
            out.add(path, int(pid_text), int(cam), split, clothes_id=f"{pid_text}_{clothes}")
    return out.result()

"""SYSU-MM01, visible-infrared Re-ID (Wu et al., ICCV 2017), read as AGW/DDAG read it."""

from __future__ import annotations

import random
from collections import defaultdict

from chatreid.data.readers._common import (Collector, check_choice, image_files, read_lines,
                                           require_dir)

INFRARED = (3, 6)
GALLERY_CAMS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}


def _ids(path) -> list[int]:
    # exp/*_id.txt: one line of comma-separated identity numbers.
    lines = read_lines(path)
    try:
        return [int(x) for x in ",".join(lines).split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{path}: expected comma-separated identity numbers") from None


def read_sysu_mm01(root, *, mode: str = "all", include_val: bool = True,
                   skip_bad: bool = False, dataset: str = "sysu_mm01"):
    """SYSU-MM01 at ``root`` (``cam1/`` .. ``cam6/`` with ``{pid:04d}/{n:04d}.jpg``, and
    ``exp/train_id.txt``, ``val_id.txt``, ``test_id.txt``).

    Conventions (AGW / DDAG, Ye et al.): cameras 3 and 6 are infrared (modality "infrared"),
    1, 2, 4, 5 visible; camid 1..6 as the folder names; pid as the folder name. Train =
    identities of train_id.txt plus val_id.txt (the reference code merges them;
    ``include_val=False`` leaves val out), all six cameras. Query = every infrared test image
    (cameras 3 and 6). Gallery = every visible test image of cameras 1, 2, 4, 5 (``mode="all"``)
    or 1, 2 (``mode="indoor"``): all candidates, since the per-trial single-shot gallery
    sampling is the evaluation harness's job (``sample_sysu_gallery`` reproduces it).
    """
    check_choice("mode", mode, GALLERY_CAMS)
    root = require_dir(root, "SYSU-MM01 dataset root")
    exp = require_dir(root / "exp", "SYSU-MM01 exp/ folder")
    train_ids = _ids(exp / "train_id.txt")
    if include_val:
        train_ids += _ids(exp / "val_id.txt")
    test_ids = _ids(exp / "test_id.txt")
    for cam in range(1, 7):
        require_dir(root / f"cam{cam}", f"SYSU-MM01 cam{cam}/ folder")
    out = Collector(root, dataset, skip_bad)
    plan = [(pid, cam, "train") for pid in sorted(set(train_ids)) for cam in range(1, 7)]
    plan += [(pid, cam, "query") for pid in sorted(set(test_ids)) for cam in INFRARED]
    plan += [(pid, cam, "gallery") for pid in sorted(set(test_ids)) for cam in GALLERY_CAMS[mode]]
    for pid, cam, split in plan:
        # Not every identity appears in every camera: a missing folder is normal here.
        folder = root / f"cam{cam}" / f"{pid:04d}"
        if not folder.is_dir():
            continue
        for path in image_files(folder):
            out.add(path, pid, cam, split, modality="infrared" if cam in INFRARED else "visible")
    return out.result()


def sample_sysu_gallery(records, trial: int, mode: str = "all") -> list:
    """The single-shot gallery of one evaluation trial, as the reference code draws it.

    AGW/DDAG's ``process_gallery_sysu``: ``random.seed(trial)``, then for each test identity in
    ascending order and each visible camera of ``mode`` (1, 2, 4, 5 or 1, 2) in that order where
    the identity has images, one ``random.choice`` among that folder's images sorted by name.
    ``records`` are this reader's gallery records (others are ignored); trials are 0..9 there.
    Uses a private ``random.Random`` so the caller's global random state is untouched.
    """
    check_choice("mode", mode, GALLERY_CAMS)
    groups: dict[tuple[int, int], list] = defaultdict(list)
    for r in records:
        if r.split == "gallery" and r.camid in GALLERY_CAMS[mode]:
            groups[(r.pid, r.camid)].append(r)
    rng = random.Random(trial)
    chosen = []
    for pid in sorted({pid for pid, _ in groups}):
        for cam in GALLERY_CAMS[mode]:
            candidates = groups.get((pid, cam))
            if candidates:
                chosen.append(rng.choice(sorted(candidates, key=lambda r: r.path)))
    return chosen

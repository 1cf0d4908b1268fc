"""PRCC, cloth-changing Re-ID (Yang et al., TPAMI 2019), read as CAL reads it."""

from __future__ import annotations

import re

from chatreid.data.readers._common import Collector, check_choice, image_files, require_dir

CAMERAS = {"A": 1, "B": 2, "C": 3}
# Images are "{camera}_cropped_rgb{n}.jpg" (e.g. "A_cropped_rgb001.jpg"); the camera is the
# first letter (CAL: osp.basename(img_dir)[0]).
NAME = re.compile(r"^([ABC])_")


def _clothes(pid_text: str, cam: str) -> str:
    # Cameras A and B saw the same clothes, C different ones (the dataset's design).
    return f"{pid_text}_{'AB' if cam in 'AB' else 'C'}"


def _identity_folders(folder, what: str, out: Collector):
    """(pid text, folder) of each numbered identity folder; other folders are reported as bad."""
    for pdir in sorted(require_dir(folder, what).iterdir()):
        if not pdir.is_dir():
            continue
        if not pdir.name.isdigit():
            out.bad(pdir, "identity folder name is not a number")
            continue
        yield pdir.name, pdir


def read_prcc(root, *, query: str = "both", include_val: bool = False,
              skip_bad: bool = False, dataset: str = "prcc"):
    """PRCC at ``root`` (the ``prcc`` folder holding ``rgb/``).

    Layout: ``rgb/train/{pid}/{A|B|C}_cropped_rgb*.jpg``, ``rgb/val/{pid}/...`` (same identities
    as train), ``rgb/test/{A|B|C}/{pid}/...``. Cameras A, B, C -> camid 1, 2, 3. Clothes: A and B
    share one outfit, C another: ``clothes_id`` "{pid}_AB" or "{pid}_C".

    Test protocol (CAL): gallery = camera A; queries = camera B (same clothes) and/or camera C
    (cloth-changing), chosen by ``query``: "B", "C" or "both" (default: both, so every image is
    in the store; the evaluation picks its queries by camid 2 or 3). The gallery holds every
    camera-A image (multi-shot, as CAL evaluates); the PRCC paper's single-shot galleries are
    drawn per trial by ``sample_prcc_gallery``. ``rgb/val`` is held out
    unless ``include_val=True`` (then it joins ``train``). Sketch and contour folders are ignored.
    """
    check_choice("query", query, ("B", "C", "both"))
    root = require_dir(root, "PRCC dataset root")
    rgb = require_dir(root / "rgb", "PRCC rgb/ folder")
    out = Collector(root, dataset, skip_bad)
    train_dirs = [("train", rgb / "train")]
    if include_val:
        train_dirs.append(("val", rgb / "val"))
    for name, folder in train_dirs:
        for pid, pdir in _identity_folders(folder, f"PRCC rgb/{name}/ folder", out):
            for path in image_files(pdir):
                m = NAME.match(path.name)
                if not m:
                    out.bad(path, "file name does not start with camera 'A_', 'B_' or 'C_'")
                    continue
                cam = m.group(1)
                out.add(path, int(pid), CAMERAS[cam], "train", clothes_id=_clothes(pid, cam))
    test = require_dir(rgb / "test", "PRCC rgb/test/ folder")
    for cam in "ABC":
        split = "gallery" if cam == "A" else "query"
        if split == "query" and query not in (cam, "both"):
            continue
        for pid, pdir in _identity_folders(test / cam, f"PRCC rgb/test/{cam}/ folder", out):
            for path in image_files(pdir):
                out.add(path, int(pid), CAMERAS[cam], split, clothes_id=_clothes(pid, cam))
    return out.result()


SINGLE_SHOT_TRIALS = 10


def sample_prcc_gallery(records, trial: int) -> list:
    """The single-shot gallery of one evaluation trial (PRCC's protocol, Yang et al., TPAMI
    2019: one camera-A image per test identity drawn at random, results averaged over 10 draws).

    ``random.Random(trial)`` (trials 0..9), then for each identity in ascending pid order one
    ``choice`` among its gallery images sorted by path: the same draw on every machine. The
    caller's global random state is untouched. ``records``: this reader's records (only
    ``gallery`` ones are drawn from).
    """
    import random
    from collections import defaultdict

    if not (isinstance(trial, int) and trial >= 0):
        raise ValueError(f"trial={trial!r}: expected a non-negative integer")
    groups: dict[int, list] = defaultdict(list)
    for r in records:
        if r.split == "gallery":
            groups[r.pid].append(r)
    rng = random.Random(trial)
    return [rng.choice(sorted(groups[pid], key=lambda r: r.path)) for pid in sorted(groups)]

"""SynthPeds folders: read through the matching benchmark reader, then ground truth attached."""

from __future__ import annotations

from pathlib import Path

from chatreid.data.readers._common import check_choice, require_dir


def detect_layout(root) -> str:
    """Which of SynthPeds' four layouts ``root`` holds, from its folders and files."""
    root = Path(root)
    found = []
    if (root / "bounding_box_train").is_dir():
        found.append("market")
    if all((root / d).is_dir() for d in ("train", "query", "test")):
        found.append("ltcc")
    if (root / "exp").is_dir() and (root / "cam1").is_dir():
        found.append("sysu")
    if (root / "reid_raw.json").is_file() and (root / "imgs").is_dir():
        found.append("pedes")
    if len(found) != 1:
        raise ValueError(f"{root}: cannot tell the SynthPeds layout (market: bounding_box_train/; "
                         f"ltcc: train/ query/ test/; sysu: cam1..6/ exp/; pedes: imgs/ "
                         f"reid_raw.json); found {found or 'none'}")
    return found[0]


def read_synthpeds(root, *, layout: str = "auto", keep_junk: bool = False,
                   keep_distractors: bool = True, skip_bad: bool = False,
                   dataset: str = "synthpeds"):
    """A SynthPeds folder at ``root`` (written by ``chatreid synth``), in any of its layouts.

    The layout ("market", "ltcc", "sysu", "pedes"; "auto" detects it) is read by the real
    benchmark's reader, with that benchmark's conventions (SYSU: val identities join train;
    pedes: val images join train, test images are gallery records with captions), so synthetic
    and real data travel the same code. Then ``synthpeds.jsonl`` (the ground truth) is attached:
    attributes, captions and clothes id for every image; camid where the benchmark has none
    (pedes). Every ground-truth image must be read back, with the same pid, camera, split and
    modality; any disagreement is an error naming the image (it would mean a layout or reader bug).

    Market layout: distractors (pid 0) and junk (pid -1), when the world holds them
    (``chatreid synth --distractors N --junk N``), are kept or dropped as Market-1501's reader
    does (``keep_distractors`` default True, ``keep_junk`` default False); the ground truth of a
    dropped image is expected to stay unread.
    """
    from chatreid.data.readers.ltcc import read_ltcc
    from chatreid.data.readers.market1501 import walk_market_layout
    from chatreid.data.readers.pedes import read_cuhk_pedes
    from chatreid.data.readers.sysu_mm01 import read_sysu_mm01
    from chatreid.data.synthpeds import GROUND_TRUTH, load_ground_truth

    check_choice("layout", layout, ("auto", "market", "ltcc", "sysu", "pedes"))
    root = require_dir(root, "SynthPeds folder")
    if layout == "auto":
        layout = detect_layout(root)
    if layout != "market" and (keep_junk or not keep_distractors):
        raise ValueError(f"{root}: keep_junk / keep_distractors apply to the market layout only, "
                         f"this is the {layout} layout")
    if layout == "market":
        # Synthetic worlds may hold more identities than Market-1501's 1501.
        records = walk_market_layout(root, dataset, max_pid=10**9, max_cam=6, keep_junk=keep_junk,
                                     keep_distractors=keep_distractors, skip_bad=skip_bad).result()
    elif layout == "ltcc":
        records = read_ltcc(root, skip_bad=skip_bad, dataset=dataset)
    elif layout == "sysu":
        records = read_sysu_mm01(root, mode="all", include_val=True, skip_bad=skip_bad,
                                 dataset=dataset)
    else:
        records = read_cuhk_pedes(root, val="train", skip_bad=skip_bad, dataset=dataset)
    truth = load_ground_truth(root)
    gt_file = root / GROUND_TRUTH
    base = Path(records.root)
    seen = set()
    for record in records:
        rel = Path(record.path).relative_to(base).as_posix()
        row = truth.get(rel)
        if row is None:
            raise ValueError(f"{record.path}: image not listed in {gt_file}")
        seen.add(rel)
        for key, mine in (("pid", record.pid), ("camid", record.camid), ("split", record.split),
                          ("modality", record.modality)):
            if key == "camid" and mine == -1:
                continue  # the text benchmark layout carries no camera; take the ground truth's
            if row[key] != mine:
                raise ValueError(f"{record.path}: {layout} reader gives {key}={mine!r} but "
                                 f"{gt_file} says {row[key]!r}")
        record.camid = int(row["camid"])
        record.clothes_id = str(row["clothes_id"])
        record.attributes = dict(row["attributes"])
        record.captions = list(row["captions"])
    unread = sorted(set(truth) - seen)
    skipped = {Path(p).relative_to(base).as_posix() for p, _ in records.skipped
               if Path(p).is_relative_to(base)}
    dropped = {-1} if not keep_junk else set()
    if not keep_distractors:
        dropped.add(0)
    unread = [p for p in unread if p not in skipped and truth[p]["pid"] not in dropped]
    if unread:
        raise ValueError(f"{gt_file}: {len(unread)} listed image(s) not found by the {layout} "
                         f"reader, e.g. {unread[0]}")
    return records

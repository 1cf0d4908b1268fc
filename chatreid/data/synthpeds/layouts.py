"""Writing a SynthPeds world to disk in the real layouts of Market-1501, LTCC, SYSU-MM01 and
CUHK-PEDES, plus ``synthpeds.jsonl`` with the full ground truth of every image.

A layout is planned first (which identity, camera, outfit and file name each image gets; only
integers, from seeded generators), then every image is rendered from its own generator keyed by
(seed, pid, image index): the output depends on the seed and the arguments only, never on the
order or speed of the work, so the same command gives byte-identical files.

Everything is written into a hidden temporary folder beside ``out`` and renamed into place at
the end: an interrupted run leaves no folder that looks complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from chatreid.data.attributes import validate
from chatreid.data.synthpeds.captions import captions
from chatreid.atomic import install_dir
from chatreid.data.synthpeds.render import render
from chatreid.data.synthpeds.world import Camera, attributes, sample_camera, sample_identity

LAYOUTS = ("market", "ltcc", "sysu", "pedes")
DEFAULT_IMAGES_PER_ID = {"market": 12, "ltcc": 12, "sysu": 16, "pedes": 4}
DEFAULT_SIZE = (128, 64)  # (height, width), Market-1501's crop size
GROUND_TRUTH = "synthpeds.jsonl"
MIN_IDS = {"market": 2, "ltcc": 2, "sysu": 3, "pedes": 3}
# Distractor people are drawn from identity keys no world reaches, so none is one of the
# world's own people (whose keys are 1..n_ids).
DISTRACTOR_KEY = 10**7


@dataclass
class Shot:
    """One planned image."""

    path: str          # relative to the output root, "/"-separated
    pid: int
    cam: int
    outfit: int        # index into the identity's outfits
    serial: int        # index of this image among its identity's images (seeds its rendering)
    split: str         # Record split: train / query / gallery
    layout_split: str  # the benchmark's own name for the split
    person: int = -2   # who is drawn (-2: the pid); differs for Market's distractors and junk
    kind: str = "person"  # or "distractor" (pid 0) / "junk" (pid -1), Market layout only

    @property
    def who(self) -> int:
        return self.pid if self.person == -2 else self.person


def cameras(layout: str, seed: int) -> dict[int, Camera]:
    """The cameras of a layout: Market 1-6, LTCC 1-12, SYSU 1-6 (3 and 6 infrared, 1-3 indoor),
    CUHK-PEDES 1-8 (images of a text benchmark come from many cameras)."""
    if layout == "market":
        return {c: sample_camera(seed, c, "visible", "outdoor" if c % 3 else "indoor", False) for c in range(1, 7)}
    if layout == "ltcc":  # LTCC is filmed indoors
        return {c: sample_camera(seed, 100 + c, "visible", "indoor", True) for c in range(1, 13)}
    if layout == "sysu":
        return {c: sample_camera(seed, 200 + c, "infrared" if c in (3, 6) else "visible",
                                 "indoor" if c <= 3 else "outdoor", True) for c in range(1, 7)}
    if layout == "pedes":
        return {c: sample_camera(seed, 300 + c, "visible", "indoor" if c <= 3 else "outdoor", True)
                for c in range(1, 9)}
    raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


def _split_ids(n: int, seed: int, fractions: tuple[float, ...]) -> list[list[int]]:
    """Shuffle pids 1..n and cut them into len(fractions)+1 disjoint groups, each non-empty."""
    perm = (np.random.default_rng([seed, 6, n]).permutation(n) + 1).tolist()
    sizes = [max(1, int(round(n * f))) for f in fractions]
    groups, start = [], 0
    for s in sizes:
        groups.append(sorted(perm[start:start + s]))
        start += s
    groups.append(sorted(perm[start:]))
    return groups


def _spread(rng: np.random.Generator, total: int, bins: int, minimum: int) -> list[int]:
    """``total`` items over ``bins`` bins, each at least ``minimum``."""
    extra = rng.multinomial(total - bins * minimum, np.full(bins, 1 / bins))
    return [minimum + int(e) for e in extra]


def _frames(rng: np.random.Generator, k: int) -> list[int]:
    frames: set[int] = set()
    while len(frames) < k:  # distinct 6-digit frame numbers; cheaper than choice(..., replace=False)
        frames.add(int(rng.integers(1, 999_999)))
    return sorted(frames)


def plan(layout: str, n_ids: int, images_per_id: int, seed: int, distractors: int = 0,
         junk: int = 0) -> tuple[list[Shot], dict[int, int]]:
    """Every image of the layout (in writing order) and the number of outfits of each person
    (keyed by ``Shot.who``). ``distractors``/``junk``: Market's extra gallery images (below)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    for name, value in (("--distractors", distractors), ("--junk", junk)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: expected a count >= 0, got {value!r}")
        if value and layout != "market":
            raise ValueError(f"{name}: only the market layout has distractor (0000) and junk (-1) "
                             f"images, not {layout}")
    if n_ids >= DISTRACTOR_KEY:
        raise ValueError(f"--ids: at most {DISTRACTOR_KEY - 1}, got {n_ids}")
    if n_ids < MIN_IDS[layout]:
        raise ValueError(f"--ids: the {layout} layout needs at least {MIN_IDS[layout]} identities, got {n_ids}")
    K = images_per_id
    if layout == "market":
        return _plan_market(n_ids, K, seed, distractors, junk)
    return {"ltcc": _plan_ltcc, "sysu": _plan_sysu, "pedes": _plan_pedes}[layout](n_ids, K, seed)


def _plan_market(n_ids: int, K: int, seed: int, distractors: int, junk: int) -> tuple[list[Shot], dict[int, int]]:
    """Market-1501: one query per (identity, camera) of the test half; distractors and junk after."""
    shots: list[Shot] = []
    outfits: dict[int, int] = {}
    if K < 4:
        raise ValueError(f"--images-per-id: market needs at least 4 (2 cameras x 2 images), got {K}")
    test, train = map(set, _split_ids(n_ids, seed, (0.5,)))
    for pid in range(1, n_ids + 1):
        rng = np.random.default_rng([seed, 7, pid])
        outfits[pid] = 1
        n_cams = int(rng.integers(2, min(6, K // 2) + 1))
        cams = sorted(int(c) + 1 for c in rng.choice(6, n_cams, replace=False))
        serial = 0
        for cam, count in zip(cams, _spread(rng, K, n_cams, 2)):
            seq = int(rng.integers(1, 7))
            query_k = int(rng.integers(count))  # Market: one query per (identity, camera)
            for k, frame in enumerate(_frames(rng, count)):
                name = f"{pid:04d}_c{cam}s{seq}_{frame:06d}_{int(rng.integers(1, 9)):02d}.jpg"
                if pid in train:
                    split, folder = "train", "bounding_box_train"
                elif k == query_k:
                    split, folder = "query", "query"
                else:
                    split, folder = "gallery", "bounding_box_test"
                shots.append(Shot(f"{folder}/{name}", pid, cam, 0, serial, split, folder))
                serial += 1
    shots += _market_extras(seed, n_ids, sorted(test), distractors, junk, outfits)
    return shots, outfits


def _plan_ltcc(n_ids: int, K: int, seed: int) -> tuple[list[Shot], dict[int, int]]:
    """LTCC: several outfits per identity (at least two for test identities)."""
    shots: list[Shot] = []
    outfits: dict[int, int] = {}
    test, train = map(set, _split_ids(n_ids, seed, (0.5,)))
    if K < 4:
        raise ValueError(f"--images-per-id: ltcc needs at least 4 (2 outfits x 2 images), got {K}")
    for pid in range(1, n_ids + 1):
        rng = np.random.default_rng([seed, 8, pid])
        most = min(4, K // 2)
        n_out = int(rng.integers(2, most + 1)) if pid in test else int(rng.integers(1, most + 1))
        outfits[pid] = n_out
        frames = _frames(rng, K)
        serial = 0
        for o, count in enumerate(_spread(rng, K, n_out, 2)):
            # The first two images of an outfit come from two different cameras, so every
            # query has a same-clothes match in another camera as well as changed-clothes ones.
            cams = [int(c) + 1 for c in rng.choice(12, 2, replace=False)]
            cams += [int(c) + 1 for c in rng.integers(0, 12, count - 2)]
            query_k = int(rng.integers(count))
            for k, cam in enumerate(cams):
                name = f"{pid:03d}_{o + 1}_c{cam}_{frames[serial]:06d}.png"
                if pid in train:
                    split, folder = "train", "train"
                elif k == query_k:
                    split, folder = "query", "query"
                else:
                    split, folder = "gallery", "test"
                shots.append(Shot(f"{folder}/{name}", pid, cam, o, serial, split, folder))
                serial += 1
    return shots, outfits


def _plan_sysu(n_ids: int, K: int, seed: int) -> tuple[list[Shot], dict[int, int]]:
    """SYSU-MM01: visible cameras 1, 2, 4, 5 and infrared 3, 6; infrared queries, visible gallery."""
    shots: list[Shot] = []
    outfits: dict[int, int] = {}
    test, val, train = map(set, _split_ids(n_ids, seed, (0.2, 0.2)))
    if K < 2:
        raise ValueError(f"--images-per-id: sysu needs at least 2 (one visible, one infrared), got {K}")
    for pid in range(1, n_ids + 1):
        rng = np.random.default_rng([seed, 9, pid])
        outfits[pid] = 1
        # Every identity is seen by at least one visible and one infrared camera.
        n_vis = int(rng.integers(1, min(4, K - 1) + 1))
        n_ir = int(rng.integers(1, min(2, K - n_vis) + 1))
        cams = sorted(int(c) for c in [*rng.choice([1, 2, 4, 5], n_vis, replace=False),
                                       *rng.choice([3, 6], n_ir, replace=False)])
        serial = 0
        for cam, count in zip(cams, _spread(rng, K, len(cams), 1)):
            for n in range(1, count + 1):
                native = "test" if pid in test else ("val" if pid in val else "train")
                # Standard loaders train on train + val ids; test: infrared queries, visible gallery.
                split = "train" if native != "test" else ("query" if cam in (3, 6) else "gallery")
                shots.append(Shot(f"cam{cam}/{pid:04d}/{n:04d}.jpg", pid, cam, 0, serial, split, native))
                serial += 1
    return shots, outfits


def _plan_pedes(n_ids: int, K: int, seed: int) -> tuple[list[Shot], dict[int, int]]:
    """CUHK-PEDES: test images are gallery records; their captions are the queries."""
    shots: list[Shot] = []
    outfits: dict[int, int] = {}
    test, val, train = map(set, _split_ids(n_ids, seed, (0.1, 0.1)))
    if K < 1:
        raise ValueError(f"--images-per-id: pedes needs at least 1, got {K}")
    number = 0
    for pid in range(1, n_ids + 1):
        rng = np.random.default_rng([seed, 10, pid])
        outfits[pid] = 1
        native = "test" if pid in test else ("val" if pid in val else "train")
        folder = "train_query" if native == "train" else "test_query"
        for serial in range(K):
            number += 1
            cam = int(rng.integers(1, 9))
            # Text-to-image: test images are gallery records; their captions are the queries.
            split = "gallery" if native == "test" else "train"
            shots.append(Shot(f"imgs/{folder}/p{pid}_s{number}.jpg", pid, cam, 0, serial, split, native))
    return shots, outfits


def _market_extras(seed: int, n_ids: int, test: list[int], distractors: int, junk: int,
                   outfits: dict[int, int]) -> list[Shot]:
    """Market-1501's two kinds of gallery images that are not a person of the benchmark, in
    ``bounding_box_test/``: distractors, named with pid 0000 (in Market, detections of people
    outside the 1,501 or of background; here people who are not in the world), and junk, named
    with pid -1 (detections too poor to count: here a fragment of a test person's crop).
    Drawn from their own generator, after the world's people: adding them changes no other
    image."""
    rng = np.random.default_rng([seed, 11, n_ids])
    shots, names = [], set()

    def name(pid_text: str, cam: int) -> str:
        while True:
            text = (f"{pid_text}_c{cam}s{int(rng.integers(1, 7))}_{int(rng.integers(1, 999_999)):06d}"
                    f"_{int(rng.integers(1, 9)):02d}.jpg")
            if text not in names:
                names.add(text)
                return text

    for k in range(distractors):
        person = DISTRACTOR_KEY + k
        outfits[person] = 1
        cam = int(rng.integers(1, 7))
        shots.append(Shot(f"bounding_box_test/{name('0000', cam)}", 0, cam, 0, 0, "gallery",
                          "bounding_box_test", person=person, kind="distractor"))
    for k in range(junk):
        person = int(test[int(rng.integers(len(test)))])
        cam = int(rng.integers(1, 7))
        # serials past any image of the person: the fragment is a shot of its own
        shots.append(Shot(f"bounding_box_test/{name('-1', cam)}", -1, cam, 0, DISTRACTOR_KEY + k,
                          "gallery", "bounding_box_test", person=person, kind="junk"))
    return shots


def _fragment(img, rng: np.random.Generator):
    """A bad detection: a band of 30-55% of the crop's height (or a side half), stretched back."""
    w, h = img.size
    if rng.random() < 0.7:
        bh = int(h * rng.uniform(0.30, 0.55))
        top = int(rng.integers(0, h - bh + 1))
        box = (0, top, w, top + bh)
    else:
        left = int(rng.integers(0, 2)) * (w // 2)
        box = (left, 0, left + w // 2, h)
    return img.crop(box).resize((w, h))


def _tokens(caption: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", caption.lower())


def generate(layout: str, out: str | os.PathLike, n_ids: int, seed: int = 0, size: tuple[int, int] | None = None,
             images_per_id: int | None = None, overwrite: bool = False, progress: bool = False,
             distractors: int = 0, junk: int = 0) -> dict:
    """Write a SynthPeds world of ``n_ids`` identities to ``out`` in ``layout``'s real layout.

    Market layout only: ``distractors`` images named pid 0000 and ``junk`` images named pid -1
    in ``bounding_box_test/`` (``_market_extras``); their ground truth has ``pid`` 0 / -1 as
    the name says, ``kind`` "distractor" / "junk" and ``person`` (who is drawn). Other images
    are the same with or without them.

    ``size`` is (height, width) of the crops (Market-like layouts keep it exactly; the others scale
    it per camera, as real cameras differ). Returns a summary: {"out", "images", "splits"}.
    Raises FileExistsError if ``out`` is a non-empty folder and ``overwrite`` is false.
    """
    out = Path(out)
    size = tuple(size or DEFAULT_SIZE)
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"--size: expected HEIGHTxWIDTH of at least 16x16, got {size}")
    images_per_id = DEFAULT_IMAGES_PER_ID.get(layout, 0) if images_per_id is None else images_per_id
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty (pass --overwrite to replace it)")
    shots, n_outfits = plan(layout, n_ids, images_per_id, seed, distractors, junk)
    cams = cameras(layout, seed)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        people, described = {}, {}  # pid -> Identity, pid -> its traits and outfits as dicts
        pedes_rows, splits, folders = [], {}, set()
        # Ground truth streams to a .part file (memory stays flat at 100,000+ images) and gets its
        # real name last: its presence marks a finished world.
        part = tmp / (GROUND_TRUTH + ".part")
        gt = open(part, "w")
        for shot in tqdm(shots, desc=f"synth {layout}", unit="img", disable=not progress):
            row = _write_shot(shot, layout, seed, size, cams, n_outfits, people, described, tmp, folders)
            gt.write(json.dumps(row) + "\n")
            splits[shot.split] = splits.get(shot.split, 0) + 1
            if layout == "pedes":
                pedes_rows.append({"split": shot.layout_split, "captions": row["captions"],
                                   "file_path": shot.path[len("imgs/"):],
                                   "processed_tokens": [_tokens(c) for c in row["captions"]], "id": shot.pid})
        _write_split_files(tmp, layout, n_ids, seed, pedes_rows)
        gt.close()
        os.rename(part, tmp / GROUND_TRUTH)
        install_dir(tmp, out)
    except BaseException:
        if "gt" in locals():
            gt.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "images": len(shots), "splits": splits}


def _write_shot(shot: Shot, layout: str, seed: int, size, cams, n_outfits, people: dict, described: dict,
                tmp: Path, folders: set) -> dict:
    """Render one image into ``tmp`` and return its ground-truth row (people are sampled once)."""
    who = shot.who
    if who not in people:
        people[who] = sample_identity(seed, who, n_outfits[who])
        described[who] = {"traits": asdict(people[who].traits),
                          "outfits": [asdict(o) for o in people[who].outfits]}
    person = people[who]
    outfit = person.outfits[shot.outfit]
    cam = cams[shot.cam]
    rng = np.random.default_rng([seed, 4, who, shot.serial])
    img, shown = render(person.traits, outfit, cam, rng, size)
    caps = captions(person.traits, outfit, shown["view"], cam.modality, rng)
    if shot.kind == "junk":
        img = _fragment(img, rng)
    target = tmp / shot.path
    if target.parent not in folders:
        target.parent.mkdir(parents=True, exist_ok=True)
        folders.add(target.parent)
    if target.suffix == ".png":
        img.save(target, format="PNG", compress_level=3)
    else:
        img.save(target, format="JPEG", quality=92)
    row = {
        "path": shot.path, "pid": shot.pid, "camid": shot.cam, "clothes_id": f"{who}_{shot.outfit + 1}",
        "modality": cam.modality, "split": shot.split, "layout_split": shot.layout_split,
        "attributes": attributes(person.traits, outfit, cam.modality, shown["view"]), "captions": caps,
        "view": shown["view"], "occluder": shown["occluder"], "width": img.width, "height": img.height,
        "traits": described[who]["traits"], "outfit": described[who]["outfits"][shot.outfit], "layout": layout, "seed": seed,
    }
    if shot.kind != "person":
        # a fragment shows part of the person: no attribute can be vouched for
        row.update(kind=shot.kind, person=who, **({"attributes": {}} if shot.kind == "junk" else {}))
    return row


def _write_split_files(tmp: Path, layout: str, n_ids: int, seed: int, pedes_rows: list[dict]) -> None:
    """The benchmark's own split files: SYSU-MM01's exp/*_id.txt, CUHK-PEDES's reid_raw.json."""
    if layout == "sysu":
        test, val, train = _split_ids(n_ids, seed, (0.2, 0.2))
        (tmp / "exp").mkdir()
        for name, ids in (("train_id.txt", train), ("val_id.txt", val), ("test_id.txt", test)):
            (tmp / "exp" / name).write_text(",".join(str(i) for i in ids) + "\n")
    if layout == "pedes":
        (tmp / "reid_raw.json").write_text(json.dumps(pedes_rows))


REQUIRED = ("path", "pid", "camid", "clothes_id", "modality", "split", "attributes", "captions")


def load_ground_truth(root: str | os.PathLike) -> dict[str, dict]:
    """Read ``<root>/synthpeds.jsonl``: {path relative to root: full ground truth of that image}.

    Raises FileNotFoundError if the file is missing and ValueError naming file, line and field for
    a malformed line, an attribute outside the vocabulary or a path listed twice.
    """
    file = Path(root) / GROUND_TRUTH
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no SynthPeds ground truth here (is {root} a SynthPeds folder?)")
    truth: dict[str, dict] = {}
    with open(file) as f:
        for no, text in enumerate(f, 1):
            where = f"{file}:{no}"
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object")
            for key in REQUIRED:
                if key not in row:
                    raise ValueError(f"{where}: missing field {key!r}")
            if not isinstance(row["attributes"], dict):
                raise ValueError(f"{where}: field 'attributes' is not an object")
            validate(row["attributes"], where=where)
            if not isinstance(row["captions"], list) or len(row["captions"]) < 2:
                raise ValueError(f"{where}: field 'captions' must list two or more captions")
            if row["path"] in truth:
                raise ValueError(f"{where}: path {row['path']!r} listed twice")
            truth[row["path"]] = row
    return truth

"""Tiny on-disk copies of the benchmarks' real layouts, written by the tests themselves.

File names, folder names, list files and JSON schemas follow the public releases; the images
are small solid-colour JPEG/PNG/BMP files (colour derived from the name, so a round trip through
the store can be checked pixel by pixel).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from PIL import Image


def colour_of(name: str) -> tuple[int, int, int]:
    h = hashlib.md5(name.encode()).digest()
    return h[0], h[1], h[2]


def image_bytes(name: str, fmt: str = "JPEG", size=(8, 16), mode: str = "RGB") -> bytes:
    img = Image.new(mode, size, colour_of(name) if mode == "RGB" else colour_of(name)[0])
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def write_image(path: Path, fmt: str | None = None, size=(8, 16), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or {".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[path.suffix.lower()]
    path.write_bytes(image_bytes(path.name, fmt, size, mode))
    return path


# -- Market-1501 ---------------------------------------------------------------------------------
MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg",
                           "0007_c3s3_077419_03.jpg", "0007_c6s3_077444_01.jpg",
                           "1500_c5s3_065212_02.jpg"],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c1s6_015971_00.jpg"],
    "bounding_box_test": ["0001_c2s1_000301_01.jpg", "0001_c5s1_001426_01.jpg",
                          "0003_c4s6_016046_02.jpg", "0000_c1s1_000151_01.jpg",
                          "0000_c6s4_002452_03.jpg", "-1_c1s1_000401_03.jpg",
                          "-1_c3s1_000551_01.jpg"],
}


def make_market(root: Path, files=MARKET, thumbs: bool = True) -> Path:
    for folder, names in files.items():
        for name in names:
            write_image(root / folder / name)
    if thumbs:  # real copies carry a Windows thumbnail cache; it is not an image
        (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0" * 10)
    return root


def write_market_attributes(root: Path, train: dict[str, dict], test: dict[str, dict]) -> Path:
    """market_attribute.mat in its real layout: struct market_attribute{train,test}, each with
    27 1xN uint8 code arrays and image_index, a 1xN cell array of identity strings."""
    import numpy as np
    from scipy.io import savemat

    from chatreid.data.attributes import MARKET_MAT_FIELDS

    def part(codes_by_id: dict[str, dict]):
        ids = sorted(codes_by_id)
        out = {f: np.array([[codes_by_id[i].get(f, 1) for i in ids]], dtype=np.uint8)
               for f in MARKET_MAT_FIELDS}
        cell = np.empty((1, len(ids)), dtype=object)
        for k, i in enumerate(ids):
            cell[0, k] = i
        out["image_index"] = cell
        return out

    path = root / "Market-1501_Attribute" / "market_attribute.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"market_attribute": {"train": part(train), "test": part(test)}})
    return path


# -- MSMT17 --------------------------------------------------------------------------------------
# (list file, folder key, [(relative path, pid)]): names "{pid}_{n}_{cam}_{date}{time}_{frame}_{k}"
MSMT = {
    "list_train.txt": ("train", [("0000/0000_000_01_0303morning_0015_0.jpg", 0),
                                 ("0000/0000_001_14_0303morning_0036_1.jpg", 0),
                                 ("0001/0001_000_05_0303noon_0102_0.jpg", 1)]),
    "list_val.txt": ("train", [("0001/0001_002_07_0303noon_0133_2.jpg", 1)]),
    "list_query.txt": ("test", [("0000/0000_000_01_0303afternoon_1591_0.jpg", 0),
                                ("0002/0002_003_15_0113morning_0987_1.jpg", 2)]),
    "list_gallery.txt": ("test", [("0000/0000_004_12_0303afternoon_1652_0.jpg", 0),
                                  ("0002/0002_005_03_0113morning_1011_0.jpg", 2),
                                  ("0002/0002_006_10_0113noon_0115_1.jpg", 2)]),
}


def make_msmt17(root: Path, version: int = 1) -> Path:
    folders = {1: {"train": "train", "test": "test"},
               2: {"train": "mask_train_v2", "test": "mask_test_v2"}}[version]
    for list_name, (key, entries) in MSMT.items():
        lines = []
        for rel, pid in entries:
            write_image(root / folders[key] / rel)
            lines.append(f"{rel} {pid}")
        (root / list_name).parent.mkdir(parents=True, exist_ok=True)
        (root / list_name).write_text("\n".join(lines) + "\n")
    return root


# -- CUHK03-NP -----------------------------------------------------------------------------------
CUHK03 = {
    "bounding_box_train": ["0001_c1_1.png", "0001_c2_6.png", "0004_c1_2.png", "0004_c2_8.png"],
    "query": ["0768_c1_1.png", "0769_c2_7.png"],
    "bounding_box_test": ["0768_c2_6.png", "0769_c1_3.png", "0769_c1_4.png"],
}


def make_cuhk03(root: Path) -> Path:
    for version in ("labeled", "detected"):
        for folder, names in CUHK03.items():
            keep = names if version == "labeled" else names[:-1]  # detected: one box fewer
            for name in keep:
                write_image(root / version / folder / name)
    return root


# -- CUHK03, the original release (cuhk-03.mat, MATLAB v7.3 = HDF5) ---------------------------
# camera pair -> per person, which of the 10 image cells hold an image (others are MATLAB's
# empty [0 0]); views: cells 1-5 are view 1, 6-10 view 2.
CUHK03_MAT_PEOPLE = {1: [(1, 2, 6, 7), (1, 6, 8), (2, 3, 7)], 2: [(1, 6), (1, 2, 3, 6, 9)]}
# 20 test splits of [pair, person], two people each (the real file: 100 each)
CUHK03_MAT_TESTSETS = [[(1, 1 + s % 3), (2, 1 + s % 2)] for s in range(20)]


def make_cuhk03_mat(root: Path, people=CUHK03_MAT_PEOPLE, testsets=CUHK03_MAT_TESTSETS,
                    where: str = "cuhk-03.mat") -> Path:
    """cuhk-03.mat as MATLAB v7.3 writes it: HDF5 datasets ``labeled`` and ``detected`` (1 x
    pairs object references, each to a 10 x persons array of references to 3 x W x H uint8
    images: MATLAB arrays appear transposed), ``testsets`` (1 x 20 references to 2 x N doubles),
    the referenced data under ``#refs#``. Labeled and detected images differ in colour."""
    import h5py
    import numpy as np

    path = root / where
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        count = [0]

        def put(data):
            count[0] += 1
            return refs.create_dataset(f"r{count[0]}", data=data).ref

        for k, version in enumerate(("labeled", "detected")):
            pair_refs = []
            for pair, persons in people.items():
                cells = np.empty((10, len(persons)), dtype=h5py.ref_dtype)
                for p, filled in enumerate(persons):
                    for n in range(1, 11):
                        if n in filled:
                            h, w = 12 + n, 6 + p
                            img = np.full((h, w, 3), (40 * pair + 60 * k, 20 * p, 10 * n), np.uint8)
                            cells[n - 1, p] = put(img.T)
                        else:
                            cells[n - 1, p] = put(np.zeros(2, dtype=np.uint64))
                pair_refs.append(put(cells))
            f.create_dataset(version, data=np.array([pair_refs], dtype=h5py.ref_dtype))
        split_refs = [put(np.array(t, dtype=np.float64).T) for t in testsets]
        f.create_dataset("testsets", data=np.array([split_refs], dtype=h5py.ref_dtype))
    return path


# -- LTCC ----------------------------------------------------------------------------------------
LTCC = {
    "train": ["001_1_c11_015869.png", "001_1_c4_015905.png", "001_2_c7_022104.png",
              "094_1_c2_009511.png"],
    "query": ["002_1_c1_015601.png", "003_2_c10_021333.png"],
    "test": ["002_1_c6_015713.png", "002_2_c3_020045.png", "003_1_c12_011001.png"],
}


def make_ltcc(root: Path) -> Path:
    for folder, names in LTCC.items():
        for name in names:
            write_image(root / folder / name)
    return root


# -- PRCC ----------------------------------------------------------------------------------------
PRCC = {
    "train": {"001": ["A_cropped_rgb001.jpg", "B_cropped_rgb010.jpg", "C_cropped_rgb020.jpg"],
              "003": ["A_cropped_rgb002.jpg", "C_cropped_rgb031.jpg"]},
    "val": {"001": ["B_cropped_rgb099.jpg"]},
    "test": {"A": {"150": ["cropped_rgb003.jpg", "cropped_rgb004.jpg"], "155": ["cropped_rgb001.jpg"]},
             "B": {"150": ["cropped_rgb120.jpg"], "155": ["cropped_rgb101.jpg"]},
             "C": {"150": ["cropped_rgb240.jpg"], "155": ["cropped_rgb201.jpg", "cropped_rgb202.jpg"]}},
}


def make_prcc(root: Path) -> Path:
    for part in ("train", "val"):
        for pid, names in PRCC[part].items():
            for name in names:
                write_image(root / "rgb" / part / pid / name)
    for cam, people in PRCC["test"].items():
        for pid, names in people.items():
            for name in names:
                write_image(root / "rgb" / "test" / cam / pid / name)
    (root / "sketch").mkdir(parents=True, exist_ok=True)  # other modalities ship beside rgb/
    return root


# -- SYSU-MM01 -----------------------------------------------------------------------------------
SYSU_IDS = {"train_id.txt": [1, 2], "val_id.txt": [3], "test_id.txt": [6, 9]}
# pid -> {camera: number of images}
SYSU_IMAGES = {1: {1: 2, 3: 1}, 2: {4: 1, 6: 2}, 3: {2: 1, 3: 1},
               6: {1: 3, 2: 2, 3: 2, 5: 1}, 9: {4: 2, 6: 1, 2: 1}}


def make_sysu(root: Path) -> Path:
    for pid, cams in SYSU_IMAGES.items():
        for cam, count in cams.items():
            for n in range(1, count + 1):
                write_image(root / f"cam{cam}" / f"{pid:04d}" / f"{n:04d}.jpg",
                            mode="L" if cam in (3, 6) else "RGB")
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True, exist_ok=True)
    (root / "exp").mkdir(parents=True, exist_ok=True)
    for name, ids in SYSU_IDS.items():
        (root / "exp" / name).write_text(",".join(str(i) for i in ids) + "\n")
    return root


# -- RegDB ---------------------------------------------------------------------------------------
REGDB_PEOPLE = {1: "male_front", 2: "female_back", 3: "male_back", 4: "female_front"}


def make_regdb(root: Path, per_person: int = 2) -> Path:
    """Two trials: trial 1 trains on persons 1-2 and tests on 3-4, trial 2 the reverse. Labels
    in the lists are per-trial relabellings, as in the real idx files."""
    names = {}
    for person, stem in REGDB_PEOPLE.items():
        for modality, letter, folder in (("visible", "v", "Visible"), ("thermal", "t", "Thermal")):
            for k in range(per_person):
                rel = f"{folder}/{person}/{stem}_{letter}_{person * 100 + k:05d}_{person}.bmp"
                write_image(root / rel, mode="L" if letter == "t" else "RGB")
                names.setdefault((person, modality), []).append(rel)
    (root / "idx").mkdir(parents=True, exist_ok=True)
    for trial, (train, test) in {1: ([1, 2], [3, 4]), 2: ([3, 4], [1, 2])}.items():
        for part, people in (("train", train), ("test", test)):
            for modality in ("visible", "thermal"):
                lines = [f"{rel} {label}" for label, p in enumerate(people)
                         for rel in names[(p, modality)]]
                (root / "idx" / f"{part}_{modality}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return root


# -- text-to-image: CUHK-PEDES, ICFG-PEDES, RSTPReid ---------------------------------------------
def _caps(i: int, n: int = 2) -> list[str]:
    return [f"Person {i} wears a {c} coat and walks to the left." for c in ("red", "blue", "green")[:n]]


CUHK_PEDES = [
    {"split": "train", "id": 1, "file_path": "CUHK01/0107002.png"},
    {"split": "train", "id": 1, "file_path": "CUHK01/0107004.png"},
    {"split": "train", "id": 2, "file_path": "train_query/p8848_s17661.jpg"},
    {"split": "val", "id": 11004, "file_path": "test_query/p4612_s6127.jpg"},
    {"split": "test", "id": 12004, "file_path": "test_query/p10376_s14337.jpg"},
    {"split": "test", "id": 12004, "file_path": "Market/0001_c1s1_001051_00.jpg"},
    {"split": "test", "id": 12005, "file_path": "CUHK03/1_1_1.jpg"},
]
ICFG_PEDES = [
    {"split": "train", "id": 0, "file_path": "train/0000/0000_000_01_0303morning_0015_0.jpg"},
    {"split": "train", "id": 1, "file_path": "train/0001/0001_000_05_0303noon_0102_0.jpg"},
    {"split": "test", "id": 3102, "file_path": "test/0027/0027_010_05_0303afternoon_1591_0.jpg"},
]
RSTPREID = [
    {"split": "train", "id": 0, "img_path": "0000_c14_0031.jpg"},
    {"split": "train", "id": 0, "img_path": "0000_c7_0012.jpg"},
    {"split": "val", "id": 3701, "img_path": "3701_c2_0004.jpg"},
    {"split": "test", "id": 3901, "img_path": "3901_c10_0015.jpg"},
    {"split": "test", "id": 3902, "img_path": "3902_c11_0010.jpg"},
]


def make_pedes(root: Path, which: str) -> Path:
    annos, json_name, key = {"cuhk_pedes": (CUHK_PEDES, "reid_raw.json", "file_path"),
                             "icfg_pedes": (ICFG_PEDES, "ICFG-PEDES.json", "file_path"),
                             "rstpreid": (RSTPREID, "data_captions.json", "img_path")}[which]
    rows = []
    for i, anno in enumerate(annos):
        write_image(root / "imgs" / anno[key])
        caps = _caps(i, 2 + i % 2)
        row = dict(anno, captions=caps)
        if which != "rstpreid":  # the PEDES files also ship tokenised captions
            row["processed_tokens"] = [c.lower().rstrip(".").split() for c in caps]
        rows.append(row)
    (root / json_name).write_text(json.dumps(rows))
    return root

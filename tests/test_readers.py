"""Every benchmark reader against a tiny copy of its real layout (tests/layouts.py)."""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import pytest

from chatreid.data import READERS, read
from chatreid.data.readers.sysu_mm01 import sample_sysu_gallery
from layouts import (CUHK03, CUHK_PEDES, LTCC, MARKET, MSMT, PRCC, RSTPREID, SYSU_IDS,
                     SYSU_IMAGES, make_cuhk03, make_cuhk03_mat, make_ltcc, make_market,
                     make_msmt17, make_pedes, make_prcc, make_regdb, make_sysu, write_image,
                     write_market_attributes)


def splits(records) -> dict[str, int]:
    return dict(Counter(r.split for r in records))


def by_name(records) -> dict[str, object]:
    return {Path(r.path).name: r for r in records}


def test_registry_lists_every_benchmark():
    assert set(READERS) == {"market1501", "msmt17", "cuhk03", "ltcc", "prcc", "sysu_mm01",
                            "regdb", "cuhk_pedes", "icfg_pedes", "rstpreid", "synthpeds"}
    with pytest.raises(ValueError, match="unknown dataset 'viper'"):
        read("viper", "/nowhere")


# -- Market-1501 -------------------------------------------------------------------------------
def test_market1501_splits_junk_and_distractors(tmp_path):
    root = make_market(tmp_path / "Market-1501-v15.09.15")
    recs = read("market1501", root)
    assert splits(recs) == {"train": 5, "query": 2, "gallery": 5}  # 2 junk dropped
    names = by_name(recs)
    r = names["0007_c6s3_077444_01.jpg"]
    assert (r.pid, r.camid, r.split, r.dataset) == (7, 6, "train", "market1501")
    assert names["0000_c6s4_002452_03.jpg"].pid == 0  # distractor kept in gallery
    assert all(r.clothes_id is None and r.modality == "visible" and r.captions == [] for r in recs)
    assert recs.root == str(root.absolute()) and recs.skipped == []
    with_junk = read("market1501", root, keep_junk=True, keep_distractors=False)
    assert splits(with_junk) == {"train": 5, "query": 2, "gallery": 5 - 2 + 2}
    assert {r.pid for r in with_junk if r.split == "gallery"} == {-1, 1, 3}


def test_market1501_attributes_from_mat(tmp_path):
    root = make_market(tmp_path / "m")
    write_market_attributes(root, {"0002": {"gender": 2, "hair": 2, "age": 2, "downblue": 2,
                                            "uppurple": 2, "handbag": 2},
                                   "0007": {"gender": 1, "up": 2}},
                            {"0001": {"clothes": 1, "down": 2, "hat": 2}})
    names = by_name(read("market1501", root))
    a = names["0002_c2s1_000301_01.jpg"].attributes
    assert a["gender"] == "female" and a["hair"] == "long" and a["age"] == "teenager"
    assert a["lower_color"] == "blue" and a["upper_color"] == "purple" and a["handbag"] is True
    assert names["0007_c3s3_077419_03.jpg"].attributes["sleeve"] == "short"
    q = names["0001_c1s1_001051_00.jpg"].attributes
    assert q["lower_type"] == "dress" and q["lower_length"] == "short" and q["hat"] is True
    assert names["1500_c5s3_065212_02.jpg"].attributes == {}  # not annotated
    assert names["0000_c1s1_000151_01.jpg"].attributes == {}  # distractor
    assert all(r.attributes == {} for r in read("market1501", root, attributes=False))


def test_market1501_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="Market-1501 dataset root"):
        read("market1501", tmp_path / "absent")
    root = make_market(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="market_attribute.mat"):
        read("market1501", root, attributes=True)
    write_image(root / "query" / "IMG_2231.jpg")
    with pytest.raises(ValueError, match=r"IMG_2231\.jpg: file name does not match"):
        read("market1501", root)
    recs = read("market1501", root, skip_bad=True)
    assert len(recs) == 12 and len(recs.skipped) == 1
    assert recs.skipped[0][0].endswith("IMG_2231.jpg") and "does not match" in recs.skipped[0][1]
    (root / "query" / "IMG_2231.jpg").unlink()
    import shutil
    shutil.rmtree(root / "query")
    with pytest.raises(FileNotFoundError, match=r"query/ folder"):
        read("market1501", root)


# -- MSMT17 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
def test_msmt17_lists_and_versions(tmp_path, version):
    root = make_msmt17(tmp_path / f"MSMT17_V{version}", version)
    recs = read("msmt17", root)  # version detected
    assert splits(recs) == {"train": 3, "query": 2, "gallery": 3}
    assert splits(read("msmt17", root, version=version, include_val=True))["train"] == 4
    names = by_name(recs)
    r = names["0000_001_14_0303morning_0036_1.jpg"]
    assert (r.pid, r.camid, r.split) == (0, 14, "train")
    q = names["0002_003_15_0113morning_0987_1.jpg"]
    assert (q.pid, q.camid, q.split) == (2, 15, "query")
    folder = "mask_test_v2" if version == 2 else "test"
    assert q.path.endswith(f"{folder}/0002/0002_003_15_0113morning_0987_1.jpg")
    other = 1 if version == 2 else 2
    with pytest.raises(FileNotFoundError, match="V%d" % other):
        read("msmt17", root, version=other)


def test_msmt17_bad_lines_and_missing_images(tmp_path):
    root = make_msmt17(tmp_path / "MSMT17_V1")
    with open(root / "list_gallery.txt", "a") as f:
        f.write("0002/0002_007_03_0113noon_0200_0.jpg 2\n")  # listed, not on disk
    with pytest.raises(ValueError, match="0002_007_03_0113noon_0200_0.jpg: listed image file"):
        read("msmt17", root)
    recs = read("msmt17", root, skip_bad=True)
    assert len(recs.skipped) == 1 and splits(recs)["gallery"] == 3
    (root / "list_query.txt").write_text("0000/0000_000_01_0303afternoon_1591_0.jpg\n")
    with pytest.raises(ValueError, match=r"list_query.txt:1: expected '<image path> <pid>'"):
        read("msmt17", root)
    (root / "list_val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_val.txt"):
        read("msmt17", root, include_val=True, skip_bad=True)


# -- CUHK03-NP ---------------------------------------------------------------------------------
def test_cuhk03_labeled_and_detected(tmp_path):
    root = make_cuhk03(tmp_path / "cuhk03-np")
    lab = read("cuhk03", root)
    det = read("cuhk03", root, version="detected")
    assert splits(lab) == {"train": 4, "query": 2, "gallery": 3}
    assert splits(det) == {"train": 3, "query": 1, "gallery": 2}
    r = by_name(lab)["0769_c2_7.png"]
    assert (r.pid, r.camid, r.split, r.dataset) == (769, 2, "query", "cuhk03")
    assert Path(lab[0].path).relative_to(lab.root).parts[0] == "labeled"
    with pytest.raises(ValueError, match=r"version='both': expected one of \('labeled', 'detected'\)"):
        read("cuhk03", root, version="both")


def test_market_style_walk_is_public_and_shared(tmp_path):
    from chatreid.data.readers.market1501 import walk_market_layout

    root = make_market(tmp_path / "m")
    walk = walk_market_layout(root, "mine", max_pid=1501, max_cam=6, folders=(("query", "query"),))
    assert [Path(r.path).name for r in walk.records] == sorted(MARKET["query"])
    with pytest.raises(ValueError, match="1500_c5s3_065212_02.jpg: pid 1500 or camera 5 outside"):
        walk_market_layout(root, "mine", max_pid=1000, max_cam=6)


def _classic(tmp_path, **kw):
    root = tmp_path / "cuhk03"
    make_cuhk03_mat(root, **kw)
    return root


def test_cuhk03_classic_splits_views_and_extracted_images(tmp_path):
    import numpy as np
    from PIL import Image

    from layouts import CUHK03_MAT_PEOPLE, CUHK03_MAT_TESTSETS

    root = _classic(tmp_path)
    recs = read("cuhk03", root)  # auto: the folder holds cuhk-03.mat only
    n_images = sum(len(cells) for persons in CUHK03_MAT_PEOPLE.values() for cells in persons)
    assert len(recs) == n_images and recs.root == str(root.absolute())
    # pid: position in the file, camera pair 1's people first; camid: the view (cells 1-5 / 6-10)
    number = {(c, p + 1): k for k, (c, p) in enumerate(
        [(c, p) for c, persons in CUHK03_MAT_PEOPLE.items() for p in range(len(persons))], 1)}
    r = by_name(recs)["2_002_2_09.png"]
    assert (r.pid, r.camid, r.dataset) == (number[(2, 2)], 2, "cuhk03")
    assert by_name(recs)["1_003_1_02.png"].camid == 1
    for split in (0, 7, 19):
        recs = read("cuhk03", root, layout="classic", split=split)
        test = {number[tuple(t)] for t in CUHK03_MAT_TESTSETS[split]}
        assert {r.pid for r in recs if r.split == "gallery"} == test
        assert {r.pid for r in recs if r.split == "train"} == set(number.values()) - test
        assert not [r for r in recs if r.split == "query"]  # the harness queries the gallery itself
    # the images are the .mat's pixels (H x W x 3 as MATLAB holds them)
    img = np.asarray(Image.open(root / "images_labeled" / "2_002_2_09.png"))
    assert img.shape == (12 + 9, 6 + 1, 3) and tuple(img[0, 0]) == (80, 20, 90)
    det = read("cuhk03", root, version="detected", split=3)
    assert Path(det[0].path).parent.name == "images_detected"
    assert tuple(np.asarray(Image.open(det[0].path))[0, 0])[0] == 40 + 60  # detected differs
    # the release unzipped as torchreid expects it, and extraction somewhere else
    other = tmp_path / "release"
    make_cuhk03_mat(other, where="cuhk03_release/cuhk-03.mat")
    out = tmp_path / "extracted"
    recs = read("cuhk03", other, extract_to=out)
    assert all(Path(r.path).parent == out / "images_labeled" for r in recs)
    assert not (other / "images_labeled").exists()


def test_cuhk03_classic_extracts_once_and_names_an_incomplete_folder(tmp_path, monkeypatch):
    import chatreid.data.readers.cuhk03 as cuhk03

    root = _classic(tmp_path)
    first = read("cuhk03", root)
    monkeypatch.setattr(cuhk03, "_extract", lambda *a: pytest.fail("extracted twice"))
    assert [r.path for r in read("cuhk03", root, split=5)] == [r.path for r in first]
    victim = root / "images_labeled" / "1_002_2_08.png"
    victim.unlink()
    with pytest.raises(ValueError, match=r"images_labeled: 1 image\(s\) of cuhk-03.mat missing, e.g. 1_002_2_08.png"):
        read("cuhk03", root)


def test_cuhk03_classic_bad_input(tmp_path, monkeypatch):
    import sys

    import h5py

    root = _classic(tmp_path)
    with pytest.raises(ValueError, match=r"split=20: expected 0..19"):
        read("cuhk03", root, split=20)
    with pytest.raises(ValueError, match=r"layout='pentagon': expected one of \('auto', 'np', 'classic'\)"):
        read("cuhk03", root, layout="pentagon")
    make_cuhk03(root)  # now both layouts: auto must not guess
    with pytest.raises(ValueError, match="holds both CUHK03-NP folders and cuhk-03.mat"):
        read("cuhk03", root)
    assert splits(read("cuhk03", root, layout="np")) == {"train": 4, "query": 2, "gallery": 3}
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither the CUHK03-NP layout"):
        read("cuhk03", tmp_path / "empty")
    # not HDF5; an HDF5 file without testsets; a split naming a person the file lacks
    bad = tmp_path / "bad"
    (bad / "cuhk-03.mat").parent.mkdir()
    (bad / "cuhk-03.mat").write_bytes(b"MATLAB 5.0 MAT-file")
    with pytest.raises(ValueError, match=r"cuhk-03.mat: not a readable MATLAB v7.3 \(HDF5\) file"):
        read("cuhk03", bad)
    with h5py.File(bad / "cuhk-03.mat", "w") as f:
        f.create_dataset("labeled", data=[0])
    with pytest.raises(ValueError, match="cuhk-03.mat: no 'testsets' cell array"):
        read("cuhk03", bad)
    wrong = _classic(tmp_path / "w", testsets=[[(1, 1), (2, 9)]] * 20)
    with pytest.raises(ValueError, match="testsets split 0 names camera pair 2 person 9"):
        read("cuhk03", wrong)
    short = _classic(tmp_path / "s", testsets=[[(1, 1)]] * 3)
    with pytest.raises(ValueError, match="testsets holds 3 splits, expected 20"):
        read("cuhk03", short)
    fresh = _classic(tmp_path / "n")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="needs h5py: pip install h5py"):
        read("cuhk03", fresh)


# -- LTCC --------------------------------------------------------------------------------------
def test_ltcc_clothes_and_cameras(tmp_path):
    root = make_ltcc(tmp_path / "LTCC_ReID")
    recs = read("ltcc", root)
    assert splits(recs) == {"train": 4, "query": 2, "gallery": 3}
    names = by_name(recs)
    r = names["001_2_c7_022104.png"]
    assert (r.pid, r.camid, r.clothes_id) == (1, 7, "001_2")
    assert names["003_2_c10_021333.png"].split == "query"
    assert names["003_1_c12_011001.png"].split == "gallery"
    assert {r.clothes_id for r in recs if r.pid == 2} == {"002_1", "002_2"}
    write_image(root / "test" / "002-1-c3.png")
    with pytest.raises(ValueError, match=r"002-1-c3.png: file name does not match LTCC"):
        read("ltcc", root)


# -- PRCC --------------------------------------------------------------------------------------
def test_prcc_cameras_clothes_and_query_option(tmp_path):
    root = make_prcc(tmp_path / "prcc")
    recs = read("prcc", root)
    assert splits(recs) == {"train": 5, "gallery": 3, "query": 5}
    names = {Path(r.path).relative_to(recs.root).as_posix(): r for r in recs}
    t = names["rgb/train/001/C_cropped_rgb020.jpg"]
    assert (t.pid, t.camid, t.clothes_id) == (1, 3, "001_C")
    assert names["rgb/train/001/B_cropped_rgb010.jpg"].clothes_id == "001_AB"
    g = names["rgb/test/A/150/cropped_rgb003.jpg"]
    assert (g.split, g.camid, g.clothes_id) == ("gallery", 1, "150_AB")
    assert names["rgb/test/C/155/cropped_rgb201.jpg"].clothes_id == "155_C"
    same = read("prcc", root, query="B")
    assert {r.camid for r in same if r.split == "query"} == {2}
    change = read("prcc", root, query="C")
    assert {r.camid for r in change if r.split == "query"} == {3} and splits(change)["query"] == 3
    assert splits(read("prcc", root, include_val=True))["train"] == 6
    with pytest.raises(ValueError, match="option query='D'"):
        read("prcc", root, query="D")


def test_prcc_single_shot_galleries(tmp_path):
    from chatreid.data.readers.prcc import sample_prcc_gallery

    recs = read("prcc", make_prcc(tmp_path / "prcc"))
    state = random.getstate()
    drawn = [sample_prcc_gallery(recs, t) for t in range(10)]
    assert random.getstate() == state  # the caller's random state is untouched
    for t, gallery in enumerate(drawn):
        assert [r.pid for r in gallery] == [150, 155]  # one camera-A image per identity
        assert all(r.camid == 1 and r.split == "gallery" for r in gallery)
        # the reference draw: seed = trial, identities ascending, choice among sorted paths
        rng = random.Random(t)
        want = [rng.choice(sorted(r.path for r in recs if r.split == "gallery" and r.pid == pid))
                for pid in (150, 155)]
        assert [r.path for r in gallery] == want
    assert {Path(g[0].path).name for g in drawn} == set(PRCC["test"]["A"]["150"])  # draws differ
    with pytest.raises(ValueError, match="trial=-1"):
        sample_prcc_gallery(recs, -1)


# -- SYSU-MM01 ---------------------------------------------------------------------------------
def test_sysu_modalities_and_protocol(tmp_path):
    root = make_sysu(tmp_path / "SYSU-MM01")
    recs = read("sysu_mm01", root)
    train_n = sum(sum(SYSU_IMAGES[p].values()) for p in (1, 2, 3))
    assert splits(recs)["train"] == train_n
    q = [r for r in recs if r.split == "query"]
    assert {(r.pid, r.camid) for r in q} == {(6, 3), (9, 6)} and len(q) == 3
    assert all(r.modality == "infrared" for r in q)
    g = [r for r in recs if r.split == "gallery"]
    assert len(g) == 3 + 2 + 1 + 2 + 1 and all(r.modality == "visible" for r in g)
    indoor = read("sysu_mm01", root, mode="indoor")
    assert {r.camid for r in indoor if r.split == "gallery"} == {1, 2}
    assert sum(1 for r in indoor if r.split == "gallery") == 3 + 2 + 1
    no_val = read("sysu_mm01", root, include_val=False)
    assert 3 not in {r.pid for r in no_val}
    assert {r.modality for r in recs if r.camid in (3, 6)} == {"infrared"}
    r = [r for r in recs if r.path.endswith("cam4/0002/0001.jpg")][0]
    assert (r.pid, r.camid, r.split, r.modality) == (2, 4, "train", "visible")


def _reference_sysu_gallery(data_path: str, mode: str, trial: int) -> list[str]:
    """The AGW/DDAG reference sampling, restated from its published description."""
    random.seed(trial)
    cams = ["cam1", "cam2", "cam4", "cam5"] if mode == "all" else ["cam1", "cam2"]
    with open(os.path.join(data_path, "exp/test_id.txt")) as f:
        ids = ["%04d" % int(y) for y in f.read().splitlines()[0].split(",")]
    files = []
    for pid in sorted(ids):
        for cam in cams:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                files.append(random.choice(sorted(img_dir + "/" + i for i in os.listdir(img_dir))))
    return files


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_sysu_gallery_sampling_matches_reference(tmp_path, mode):
    root = make_sysu(tmp_path / "SYSU-MM01")
    recs = read("sysu_mm01", root, mode="all")
    draws = set()
    for trial in range(10):
        mine = [os.path.relpath(r.path, recs.root) for r in sample_sysu_gallery(recs, trial, mode)]
        ref = [os.path.relpath(p, root) for p in _reference_sysu_gallery(str(root), mode, trial)]
        assert mine == ref
        draws.add(tuple(mine))
    assert len(draws) > 1  # trials differ
    state = random.getstate()
    sample_sysu_gallery(recs, 3, mode)
    assert random.getstate() == state


def test_sysu_bad_id_file(tmp_path):
    root = make_sysu(tmp_path / "s")
    (root / "exp" / "test_id.txt").write_text("6;9\n")
    with pytest.raises(ValueError, match="test_id.txt: expected comma-separated"):
        read("sysu_mm01", root)
    (root / "exp" / "val_id.txt").unlink()
    with pytest.raises(FileNotFoundError, match="val_id.txt"):
        read("sysu_mm01", root)


# -- RegDB -------------------------------------------------------------------------------------
def test_regdb_trials_and_direction(tmp_path):
    root = make_regdb(tmp_path / "RegDB")
    t1 = read("regdb", root)
    assert splits(t1) == {"train": 8, "query": 4, "gallery": 4}
    assert {r.pid for r in t1 if r.split == "train"} == {1, 2}
    q = [r for r in t1 if r.split == "query"]
    assert {(r.modality, r.camid) for r in q} == {("visible", 1)} and {r.pid for r in q} == {3, 4}
    g = [r for r in t1 if r.split == "gallery"]
    assert {(r.modality, r.camid) for r in g} == {("infrared", 2)}
    t2 = read("regdb", root, trial=2, direction="thermal_to_visible")
    assert {r.pid for r in t2 if r.split == "train"} == {3, 4}
    assert {r.modality for r in t2 if r.split == "query"} == {"infrared"}
    assert {r.pid for r in t2 if r.split == "query"} == {1, 2}
    with pytest.raises(ValueError, match="trial=11"):
        read("regdb", root, trial=11)
    with pytest.raises(FileNotFoundError, match="train_visible_3.txt"):
        read("regdb", root, trial=3)


def test_regdb_list_errors(tmp_path):
    root = make_regdb(tmp_path / "RegDB")
    path = root / "idx" / "test_thermal_1.txt"
    path.write_text(path.read_text() + "Visible/3/male_back_v_00300_3.bmp 0\n")
    with pytest.raises(ValueError, match=r"test_thermal_1.txt:5: .* is not a thermal image"):
        read("regdb", root)
    recs = read("regdb", root, skip_bad=True)
    assert len(recs.skipped) == 1 and splits(recs)["gallery"] == 4


# -- text-to-image -----------------------------------------------------------------------------
def test_cuhk_pedes_captions_and_val_option(tmp_path):
    root = make_pedes(tmp_path / "CUHK-PEDES", "cuhk_pedes")
    recs = read("cuhk_pedes", root)
    assert splits(recs) == {"train": 3, "gallery": 3}  # val excluded, no query images
    g = {Path(r.path).relative_to(recs.root).as_posix(): r for r in recs}
    r = g["imgs/Market/0001_c1s1_001051_00.jpg"]
    assert (r.pid, r.split, r.camid) == (12004, "gallery", -1)
    assert r.captions == [f"Person 5 wears a {c} coat and walks to the left." for c in ("red", "blue", "green")]
    assert all(len(r.captions) >= 2 for r in recs)
    assert sum(len(r.captions) for r in recs if r.split == "gallery") == 2 + 3 + 2
    assert splits(read("cuhk_pedes", root, val="train")) == {"train": 4, "gallery": 3}
    as_test = read("cuhk_pedes", root, val="test")
    assert splits(as_test) == {"train": 3, "gallery": 1}
    assert [r.pid for r in as_test if r.split == "gallery"] == [11004]


def test_icfg_and_rstpreid(tmp_path):
    icfg = read("icfg_pedes", make_pedes(tmp_path / "ICFG-PEDES", "icfg_pedes"))
    assert splits(icfg) == {"train": 2, "gallery": 1}
    assert [r.pid for r in icfg if r.split == "gallery"] == [3102]
    rstp = read("rstpreid", make_pedes(tmp_path / "RSTPReid", "rstpreid"))
    assert splits(rstp) == {"train": 2, "gallery": 2}
    assert {r.pid for r in rstp if r.split == "gallery"} == {3901, 3902}
    assert by_name(rstp)["3902_c11_0010.jpg"].captions[0].startswith("Person 4 ")
    assert len(RSTPREID) == 5 and len(CUHK_PEDES) == 7


def test_pedes_bad_annotations(tmp_path):
    root = make_pedes(tmp_path / "RSTPReid", "rstpreid")
    (root / "imgs" / "3901_c10_0015.jpg").unlink()
    with pytest.raises(ValueError, match="3901_c10_0015.jpg: listed image file does not exist"):
        read("rstpreid", root)
    assert len(read("rstpreid", root, check_files=False)) == 4
    (root / "data_captions.json").write_text('[{"id": 1, "split": "train", "captions": ["x"]}]')
    with pytest.raises(ValueError, match=r"data_captions.json\[0\]: annotation lacks field\(s\) \['img_path'\]"):
        read("rstpreid", root)
    (root / "data_captions.json").write_text("{not json")
    with pytest.raises(ValueError, match="data_captions.json: not valid JSON"):
        read("rstpreid", root)


# -- SynthPeds ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from chatreid.data.synthpeds import generate

    base = tmp_path_factory.mktemp("synth")
    for layout in ("market", "ltcc", "sysu", "pedes"):
        generate(layout, base / layout, n_ids=6, seed=1, images_per_id=4 if layout != "pedes" else 2)
    return base


@pytest.mark.parametrize("layout", ["market", "ltcc", "sysu", "pedes"])
def test_synthpeds_layouts_read_back_with_ground_truth(synth, layout):
    from chatreid.data.synthpeds import load_ground_truth
    from chatreid.data.readers.synthpeds import detect_layout

    root = synth / layout
    assert detect_layout(root) == layout
    recs = read("synthpeds", root)
    truth = load_ground_truth(root)
    assert len(recs) == len(truth)
    for r in recs:
        row = truth[Path(r.path).relative_to(recs.root).as_posix()]
        assert (r.pid, r.camid, r.split, r.modality) == (row["pid"], row["camid"], row["split"], row["modality"])
        assert r.captions == row["captions"] and r.attributes == row["attributes"]
        assert r.clothes_id == row["clothes_id"] and r.dataset == "synthpeds"
    assert splits(recs) == dict(Counter(row["split"] for row in truth.values()))


def test_synthpeds_disagreement_is_an_error(synth, tmp_path):
    import shutil

    root = tmp_path / "market"
    shutil.copytree(synth / "market", root)
    victim = sorted((root / "query").iterdir())[0]
    victim.unlink()
    with pytest.raises(ValueError, match="not found by the market reader"):
        read("synthpeds", root)
    with pytest.raises(ValueError, match="cannot tell the SynthPeds layout"):
        read("synthpeds", tmp_path)


def test_synthpeds_market_distractors_and_junk_are_read_as_market_1501_loaders_do(tmp_path):
    from chatreid.data.synthpeds import generate

    root = tmp_path / "m"
    generate("market", root, n_ids=6, seed=1, images_per_id=4, distractors=3, junk=2)
    recs = read("synthpeds", root)  # torchreid: junk (-1) dropped, distractors (0) kept in the gallery
    gallery = [r for r in recs if r.split == "gallery"]
    assert sum(r.pid == 0 for r in gallery) == 3 and all(r.pid != -1 for r in recs)
    assert all(r.pid > 0 for r in recs if r.split != "gallery")
    with_junk = read("synthpeds", root, keep_junk=True)
    assert sorted(r.pid for r in with_junk if r.pid < 1) == [-1, -1, 0, 0, 0]
    assert all(Path(r.path).name.startswith(("0000_", "-1_")) for r in with_junk if r.pid < 1)
    assert not [r for r in read("synthpeds", root, keep_distractors=False) if r.pid == 0]
    with pytest.raises(ValueError, match="apply to the market layout only, this is the ltcc layout"):
        read("synthpeds", synth_ltcc(tmp_path), keep_junk=True)


def synth_ltcc(tmp_path):
    from chatreid.data.synthpeds import generate

    return generate("ltcc", tmp_path / "ltcc", n_ids=4, seed=1, images_per_id=4)["out"]


def test_metric_ignores_junk_and_counts_distractors_as_wrong(tmp_path):
    """Market-1501's own evaluation (Zheng et al.'s code) removes junk (-1) and same-camera
    matches from each ranking and counts distractors (0) as wrong; reading the gallery as the
    standard loaders do (junk dropped) and scoring under protocol "market" gives its figures."""
    import numpy as np

    from chatreid.data.synthpeds import generate
    from chatreid.metrics import evaluate_reid

    root = tmp_path / "m"
    generate("market", root, n_ids=8, seed=3, images_per_id=6, distractors=6, junk=5)
    everything = read("synthpeds", root, keep_junk=True)
    query = [r for r in everything if r.split == "query"]
    full = [r for r in everything if r.split == "gallery"]
    dist = np.random.default_rng(0).random((len(query), len(full)))
    # junk placed first in every ranking: if it counted, Rank-1 would be 0
    is_junk = np.array([g.pid == -1 for g in full])
    dist[:, is_junk] = -1.0

    def reference(q, row):
        order = np.argsort(row, kind="stable")
        ranked = [full[j] for j in order
                  if full[j].pid != -1 and not (full[j].pid == q.pid and full[j].camid == q.camid)]
        hits = np.flatnonzero([g.pid == q.pid for g in ranked])
        return hits[0] == 0, np.mean(np.arange(1, hits.size + 1) / (hits + 1.0))

    ref = [reference(q, dist[i]) for i, q in enumerate(query)]
    kept = [j for j, g in enumerate(full) if g.pid != -1]
    assert [full[j].path for j in kept] == [r.path for r in read("synthpeds", root) if r.split == "gallery"]
    gallery = [full[j] for j in kept]

    def score(d):
        return evaluate_reid(d, [q.pid for q in query], [g.pid for g in gallery],
                             [q.camid for q in query], [g.camid for g in gallery], protocol="market")

    got = score(dist[:, kept])
    assert got["rank1"] == pytest.approx(np.mean([r for r, _ in ref]))
    assert got["mAP"] == pytest.approx(np.mean([ap for _, ap in ref]))
    # distractors are wrong matches: put one ahead of everything and Rank-1 falls to 0
    distractor = [k for k, g in enumerate(gallery) if g.pid == 0][0]
    worse = dist[:, kept].copy()
    worse[:, distractor] = -2.0
    assert score(worse)["rank1"] == 0.0 and score(worse)["mAP"] < got["mAP"]

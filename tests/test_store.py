"""The image store: build from readers, schema, round trip, bad input, atomic writes, the Hub."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from chatreid.data import Records, read
from chatreid.data.record import Record
from chatreid.data.builder import BadImageError, build
from chatreid.data.store import ImageStore, features, METADATA_COLUMNS
from chatreid.hub import PushError
from hub_fakes import FakeHub
from layouts import MARKET, colour_of, make_market, write_image, write_market_attributes


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = make_market(tmp_path_factory.mktemp("market") / "Market-1501-v15.09.15")
    write_market_attributes(root, {"0002": {"gender": 2, "backpack": 2, "upblue": 2}},
                            {"0001": {"gender": 1, "age": 3}})
    return root


@pytest.fixture(scope="module")
def built(market, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores") / "market"
    report = build([read("market1501", market)], out, progress=False)
    return out, report


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_schema_is_the_architecture_contract(built):
    out, report = built
    store = ImageStore.load(out)
    assert store.dataset.features == features()
    assert list(store.dataset.column_names) == [
        "image_id", "image", "dataset", "path", "pid", "camid", "split", "clothes_id",
        "modality", "captions", "attributes", "width", "height"]
    expected = sum(len(v) for v in MARKET.values()) - 2  # two junk (-1) images dropped
    assert report.num_images == expected == len(store)


def test_round_trip_ids_images_records(built, market):
    store = ImageStore.load(built[0])
    iid = "market1501/bounding_box_train/0002_c1s1_000451_03.jpg"
    assert iid in store and "market1501/nope.jpg" not in store
    assert sorted(store.ids()) == sorted(
        f"market1501/{folder}/{n}" for folder, names in MARKET.items() for n in names
        if not n.startswith("-1"))
    img = store.image(iid)
    assert img.mode == "RGB" and img.size == (8, 16)
    r, g, b = img.getpixel((4, 8))
    want = colour_of("0002_c1s1_000451_03.jpg")
    assert max(abs(r - want[0]), abs(g - want[1]), abs(b - want[2])) <= 8  # JPEG rounding
    rec = store.record(iid)
    assert rec["pid"] == 2 and rec["camid"] == 1 and rec["split"] == "train"
    assert rec["path"] == "bounding_box_train/0002_c1s1_000451_03.jpg"
    assert rec["attributes"]["gender"] == "female" and rec["attributes"]["backpack"] is True
    assert rec["width"] == 8 and rec["height"] == 16 and rec["clothes_id"] is None
    assert store.record("market1501/query/0001_c1s1_001051_00.jpg")["attributes"]["age"] == "adult"
    with pytest.raises(KeyError, match="not in image store"):
        store.record("market1501/missing.jpg")


def test_original_bytes_are_kept(built, market):
    import datasets

    store = ImageStore.load(built[0])
    raw = store.dataset.cast_column("image", datasets.Image(decode=False))
    row = store.ids().index("market1501/query/0003_c1s6_015971_00.jpg")
    assert raw[row]["image"]["bytes"] == (market / "query" / "0003_c1s6_015971_00.jpg").read_bytes()


def test_metadata_is_columnar_without_images(built):
    store = ImageStore.load(built[0])
    meta = store.metadata()
    assert set(meta) == set(METADATA_COLUMNS) and "image" not in meta
    assert len(meta["pid"]) == len(store)
    splits = dict(zip(meta["image_id"], meta["split"]))
    assert splits["market1501/bounding_box_test/0000_c1s1_000151_01.jpg"] == "gallery"
    summary = store.summary()
    assert summary["split"] == {"market1501/gallery": 5, "market1501/query": 2,
                                "market1501/train": 5}
    assert summary["modality"] == {"market1501/visible": 12}


def test_card_and_report_written(built):
    out, _ = built
    card = (out / "README.md").read_text()
    assert "market1501/gallery | 5" in card and "market1501/cam1" in card
    assert json.loads((out / "chatreid_build.json").read_text())["num_images"] == 12


def _records(tmp_path, names, dataset="toyset"):
    root = tmp_path / dataset
    recs = []
    for i, name in enumerate(names):
        write_image(root / name)
        recs.append(Record(path=str(root / name), pid=i, camid=1, split="train", dataset=dataset,
                           modality="infrared" if i % 2 else "visible",
                           captions=[f"person {i}"], clothes_id=f"{i}_1"))
    return Records(recs, root=str(root))


def test_several_sources_and_fields(tmp_path, market):
    toy = _records(tmp_path, ["a/1.png", "b/2.bmp"])
    out = tmp_path / "store"
    build([read("market1501", market), toy], out, progress=False)
    store = ImageStore.load(out)
    assert len(store) == 14
    rec = store.record("toyset/b/2.bmp")
    assert rec["modality"] == "infrared" and rec["captions"] == ["person 1"]
    assert rec["clothes_id"] == "1_1"
    assert store.image("toyset/b/2.bmp").mode == "RGB"
    assert store.summary()["dataset"] == {"market1501": 12, "toyset": 2}


def test_truncated_image_names_the_file(tmp_path):
    toy = _records(tmp_path, ["ok.jpg", "bad.jpg"])
    bad = Path(toy[1].path)
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    out = tmp_path / "store"
    with pytest.raises(BadImageError, match="bad.jpg"):
        build([toy], out, progress=False)
    # Nothing that looks like a store, and no temporary folder left behind.
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".store")] == []


def test_skip_bad_reports_what_and_why(tmp_path):
    toy = _records(tmp_path, ["ok.jpg", "bad.jpg", "empty.jpg"])
    Path(toy[1].path).write_bytes(b"not an image at all")
    Path(toy[2].path).write_bytes(b"")
    out = tmp_path / "store"
    report = build([toy], out, skip_bad=True, progress=False)
    assert report.num_images == 1
    assert sorted(Path(p).name for p, _ in report.skipped) == ["bad.jpg", "empty.jpg"]
    assert any("empty file" in why for _, why in report.skipped)
    saved = json.loads((out / "chatreid_build.json").read_text())
    assert saved["num_skipped"] == 2
    assert ImageStore.load(out).ids() == ["toyset/ok.jpg"]


def test_duplicate_image_id_is_an_error(tmp_path):
    toy = _records(tmp_path, ["x.jpg"])
    with pytest.raises(ValueError, match="occurs twice"):
        build([toy, toy], tmp_path / "store", progress=False)


def test_existing_output_is_not_clobbered(tmp_path):
    toy = _records(tmp_path, ["x.jpg"])
    out = tmp_path / "store"
    build([toy], out, progress=False)
    before = tree_digest(out)
    with pytest.raises(FileExistsError, match="already exists"):
        build([toy], out, progress=False)
    assert tree_digest(out) == before
    more = _records(tmp_path, ["x.jpg", "y.jpg"])
    build([more], out, overwrite=True, progress=False)
    assert len(ImageStore.load(out)) == 2


def test_failed_push_leaves_local_store_intact(built, monkeypatch):
    import datasets

    out, _ = built
    before = tree_digest(out)

    def boom(self, repo_id, **kwargs):
        raise ConnectionError("simulated network failure\nsecond line")

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", boom)
    store = ImageStore.load(out)
    with pytest.raises(PushError) as info:
        store.push_to_hub("someone/chatreid-market")
    message = str(info.value)
    assert "someone/chatreid-market" in message and "intact" in message and str(out) in message
    assert tree_digest(out) == before
    assert len(ImageStore.load(out)) == 12


def test_push_offline_fails_cleanly(built):
    # HF_HUB_OFFLINE=1 (conftest): the real client refuses; the local copy must survive.
    out, _ = built
    before = tree_digest(out)
    with pytest.raises(PushError, match="intact"):
        ImageStore.load(out).push_to_hub("someone/chatreid-market")
    assert tree_digest(out) == before


def test_push_uploads_dataset_then_card(built, tmp_path, monkeypatch):
    hub = FakeHub(tmp_path / "hub", monkeypatch)
    ImageStore.load(built[0]).push_to_hub("me/market")
    assert [c[2] for c in hub.commits] == [["data", "README.md"], ["README.md"]]
    assert len(ImageStore.load("me/market")) == 12
    card = (hub.repo("me/market") / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n---\n") and "market1501/query | 2" in card


def test_load_from_hub_id_uses_datasets(built, monkeypatch):
    import datasets

    local = datasets.load_from_disk(str(built[0]))
    seen = {}

    def fake_load_dataset(repo, **kwargs):
        seen["repo"] = repo
        return datasets.DatasetDict({"train": local})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    store = ImageStore.load("me/chatreid-market")
    assert seen["repo"] == "me/chatreid-market" and len(store) == 12
    assert store.image("market1501/query/0001_c1s1_001051_00.jpg").mode == "RGB"


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="image store .*: no such local path"):
        ImageStore.load(str(tmp_path / "missing" / "store"))
    with pytest.raises(ValueError, match="cannot load image store 'nobody/absent'"):
        ImageStore.load("nobody/absent")
    import datasets

    datasets.Dataset.from_dict({"x": [1]}).save_to_disk(str(tmp_path / "other"))
    with pytest.raises(ValueError, match="missing column"):
        ImageStore.load(tmp_path / "other")


def test_cli_build_and_info(market, tmp_path, capsys):
    from chatreid.cli import main

    out = tmp_path / "cli-store"
    assert main(["store", "build", "--source", f"market1501:{market}", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 12 images" in printed
    assert main(["store", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "market1501/train: 5" in info and "market1501/cam6" in info
    assert main(["store", "build", "--source", "market1501", "--out", str(tmp_path / "x")]) == 2
    assert "expected NAME[,key=value...]:PATH" in capsys.readouterr().err


def test_cli_push_failure_says_local_copy_is_kept(market, tmp_path, capsys):
    from chatreid.cli import main

    out = tmp_path / "s"
    code = main(["store", "build", "--source", f"market1501:{market}", "--out", str(out),
                 "--push-to-hub", "me/market"])
    assert code == 1
    assert "intact" in capsys.readouterr().err
    assert len(ImageStore.load(out)) == 12


def test_source_options_parse():
    from chatreid.data.store import parse_source

    assert parse_source("cuhk03,version=detected:/d/cuhk03-np") == (
        "cuhk03", "/d/cuhk03-np", {"version": "detected"})
    assert parse_source("regdb,trial=3,direction=thermal_to_visible:C:/x") == (
        "regdb", "C:/x", {"trial": 3, "direction": "thermal_to_visible"})
    assert parse_source("msmt17,include_val=true:/m")[2] == {"include_val": True}
    with pytest.raises(ValueError, match="not key=value"):
        parse_source("regdb,trial:/x")


def test_cli_several_sources_with_options_and_skip_bad(tmp_path, capsys):
    import shutil

    from chatreid.cli import main
    from layouts import make_cuhk03

    market = make_market(tmp_path / "market")
    bad = market / "query" / "0003_c1s6_015971_00.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated JPEG
    write_image(market / "query" / "notes.jpg")  # a name the reader cannot parse
    cuhk = make_cuhk03(tmp_path / "cuhk03-np")
    out = tmp_path / "store"
    args = ["store", "build", "--source", f"market1501:{market}",
            "--source", f"cuhk03,version=detected:{cuhk}", "--out", str(out)]
    assert main(args) == 2
    assert "notes.jpg" in capsys.readouterr().err and not out.exists()
    assert main(args + ["--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "skipped 2 bad image(s)" in captured.err
    assert "0003_c1s6_015971_00.jpg" in captured.err and "notes.jpg" in captured.err
    store = ImageStore.load(out)
    assert store.summary()["dataset"] == {"cuhk03": 6, "market1501": 11}
    assert "cuhk03/detected/query/0768_c1_1.png" in store
    shutil.rmtree(out)


def test_cli_refuses_existing_out(tmp_path, capsys):
    from chatreid.cli import main

    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    toy = tmp_path / "m"
    make_market(toy, {"query": ["0001_c1s1_001051_00.jpg"], "bounding_box_train": [],
                      "bounding_box_test": []}, thumbs=False)
    assert main(["store", "build", "--source", f"market1501:{toy}", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_summary_counts_identities_and_orders_cameras_numerically():
    import pyarrow as pa

    from chatreid.data.store import summarize

    table = pa.table({"dataset": ["a", "a", "b", "a"], "split": ["train", "train", "query", "train"],
                      "camid": [10, 2, 1, 2], "modality": ["visible", "infrared", "visible", "visible"],
                      "pid": [1, 1, 5, 2]})
    s = summarize(table)
    assert s["images"] == 4 and s["identities"] == {"a/train": 2, "b/query": 1}
    assert list(s["camera"]) == ["a/cam2", "a/cam10", "b/cam1"] and s["camera"]["a/cam2"] == 2
    assert s["modality"] == {"a/infrared": 1, "a/visible": 2, "b/visible": 1}


def test_record_is_the_same_before_and_after_metadata_is_cached(built):
    iid = "market1501/bounding_box_test/0003_c4s6_016046_02.jpg"
    first = ImageStore.load(built[0]).record(iid)  # single-row read
    cached = ImageStore.load(built[0])
    cached.metadata()
    assert cached.record(iid) == first
    assert first["pid"] == 3 and first["camid"] == 4 and first["split"] == "gallery"
    assert first["image_id"] == iid and isinstance(first["attributes"], dict)

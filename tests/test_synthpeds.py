"""SynthPeds: the four layouts, ground truth, determinism, truthful images and captions, the CLI,
atomic writes, and the colour-histogram baseline."""

import hashlib
import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chatreid.baselines import chi_square_distance, color_histogram_features, cosine_distance
from chatreid.cli import main as cli
from chatreid.data.attributes import VOCAB
from chatreid.data.synthpeds import (
    GROUND_TRUTH, cameras, generate, load_ground_truth, render, sample_camera, sample_identity,
)
from chatreid.data.synthpeds import layouts
from chatreid.data.synthpeds.captions import captions
from chatreid.data.synthpeds.world import SHADES

COLOUR_WORDS = set(VOCAB["upper_color"]) | set(VOCAB["lower_color"]) | {"grey", "brown", "blond", "dark"}


def files_under(root: Path, pattern: str = "*") -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob(pattern)) if p.is_file()}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """One small world per layout (10 identities, seed 3, few images each to stay fast)."""
    base = tmp_path_factory.mktemp("synth")
    out = {}
    for layout, k in (("market", 6), ("ltcc", 6), ("sysu", 6), ("pedes", 2)):
        generate(layout, base / layout, 10, seed=3, images_per_id=k)
        out[layout] = base / layout
    return out


def check_ground_truth_covers_images(root: Path, suffix: str):
    truth = load_ground_truth(root)
    images = {p.relative_to(root).as_posix() for p in root.rglob(f"*{suffix}")}
    assert images == set(truth), "every image has one ground-truth line and vice versa"
    for path, row in truth.items():
        assert len(row["captions"]) >= 2 and len(set(row["captions"])) == len(row["captions"]), path
        for key, value in row["attributes"].items():
            assert value in VOCAB[key], (path, key, value)
    return truth


def test_market_layout(worlds):
    root = worlds["market"]
    assert sorted(p.name for p in root.iterdir()) == ["bounding_box_test", "bounding_box_train", "query", GROUND_TRUTH]
    truth = check_ground_truth_covers_images(root, ".jpg")
    pattern = re.compile(r"^(\d{4})_c([1-6])s(\d)_(\d{6})_(\d{2})\.jpg$")
    by_folder = {}
    for path, row in truth.items():
        folder, name = path.split("/")
        m = pattern.match(name)
        assert m, name
        assert int(m.group(1)) == row["pid"] and int(m.group(2)) == row["camid"]
        assert Image.open(root / path).size == (64, 128)
        by_folder.setdefault(folder, []).append(row)
    train = {r["pid"] for r in by_folder["bounding_box_train"]}
    test = {r["pid"] for r in by_folder["query"]}
    assert train and test and not train & test
    assert {r["pid"] for r in by_folder["bounding_box_test"]} == test
    # Market: one query per (identity, camera); each has a match in another camera of the gallery.
    pairs = Counter((r["pid"], r["camid"]) for r in by_folder["query"])
    assert set(pairs.values()) == {1}
    gallery = {(r["pid"], r["camid"]) for r in by_folder["bounding_box_test"]}
    assert pairs.keys() == {(r["pid"], r["camid"]) for r in by_folder["query"] + by_folder["bounding_box_test"]}
    for pid, cam in pairs:
        assert any(p == pid and c != cam for p, c in gallery), (pid, cam)


def test_ltcc_layout_spans_outfit_changes(worlds):
    root = worlds["ltcc"]
    truth = check_ground_truth_covers_images(root, ".png")
    pattern = re.compile(r"^(\d{3,})_(\d+)_c(\d+)_(\d{6})\.png$")
    rows = {"train": [], "query": [], "test": []}
    for path, row in truth.items():
        folder, name = path.split("/")
        m = pattern.match(name)
        assert m, name
        assert (int(m.group(1)), int(m.group(3))) == (row["pid"], row["camid"]) and 1 <= row["camid"] <= 12
        assert row["clothes_id"] == f"{row['pid']}_{m.group(2)}"
        rows[folder].append(row)
    assert not {r["pid"] for r in rows["train"]} & {r["pid"] for r in rows["query"]}
    for q in rows["query"]:
        others = [g for g in rows["test"] if g["pid"] == q["pid"] and g["camid"] != q["camid"]]
        assert any(g["clothes_id"] != q["clothes_id"] for g in others), f"{q['path']}: no changed-clothes match"
        # Across outfits only body traits stay.
        changed = next(g for g in others if g["clothes_id"] != q["clothes_id"])
        assert changed["traits"] == q["traits"] and changed["outfit"] != q["outfit"]


def test_sysu_layout_visible_and_infrared(worlds):
    root = worlds["sysu"]
    truth = check_ground_truth_covers_images(root, ".jpg")
    lists = {}
    for name in ("train_id.txt", "val_id.txt", "test_id.txt"):
        text = (root / "exp" / name).read_text()
        assert re.fullmatch(r"\d+(,\d+)*\n", text), (name, text)
        lists[name] = {int(v) for v in text.split(",")}
    assert set().union(*lists.values()) == set(range(1, 11)) and sum(map(len, lists.values())) == 10
    seen = {}
    for path, row in truth.items():
        m = re.fullmatch(r"cam([1-6])/(\d{4})/(\d{4})\.jpg", path)
        assert m and (int(m.group(1)), int(m.group(2))) == (row["camid"], row["pid"]), path
        a = np.asarray(Image.open(root / path).convert("RGB")).astype(int)
        grey = (a.max(axis=2) - a.min(axis=2)).max() <= 6  # JPEG may wobble a grey pixel a little
        assert row["modality"] == ("infrared" if row["camid"] in (3, 6) else "visible"), path
        assert grey == (row["modality"] == "infrared"), path
        if row["modality"] == "infrared":
            assert "upper_color" not in row["attributes"] and "lower_color" not in row["attributes"]
            words = {w for c in row["captions"] for w in re.findall(r"[a-z]+", c.lower())}
            assert not words & COLOUR_WORDS, (path, row["captions"])
        seen.setdefault(row["pid"], set()).add(row["modality"])
        assert row["split"] == ("train" if row["pid"] not in lists["test_id.txt"]
                                else "query" if row["modality"] == "infrared" else "gallery")
    assert all(m == {"visible", "infrared"} for m in seen.values())


def test_pedes_layout(worlds):
    root = worlds["pedes"]
    truth = check_ground_truth_covers_images(root, ".jpg")
    raw = json.loads((root / "reid_raw.json").read_text())
    assert len(raw) == len(truth)
    for item in raw:
        assert set(item) == {"split", "captions", "file_path", "processed_tokens", "id"}
        assert item["split"] in ("train", "val", "test") and isinstance(item["id"], int)
        assert (root / "imgs" / item["file_path"]).is_file()
        assert len(item["captions"]) >= 2 and len(item["processed_tokens"]) == len(item["captions"])
        for caption, tokens in zip(item["captions"], item["processed_tokens"]):
            assert " ".join(tokens) == " ".join(re.findall(r"[a-z0-9]+", caption.lower()))
        assert truth["imgs/" + item["file_path"]]["captions"] == item["captions"]
    splits = {}
    for item in raw:
        splits.setdefault(item["split"], set()).add(item["id"])
    assert set(splits) == {"train", "val", "test"}
    assert not (splits["train"] & splits["test"]) and not (splits["val"] & splits["test"])


def test_layouts_read_back_through_the_readers(worlds):
    read = pytest.importorskip("chatreid.data").read
    for layout, root in worlds.items():
        truth = load_ground_truth(root)
        records = read("synthpeds", root)
        assert len(records) == len(truth), layout
        assert Counter(r.split for r in records) == Counter(r["split"] for r in truth.values()), layout


def test_same_seed_same_bytes_other_seed_other_world(tmp_path):
    for layout in ("market", "ltcc"):
        generate(layout, tmp_path / f"a-{layout}", 4, seed=11, images_per_id=4)
        generate(layout, tmp_path / f"b-{layout}", 4, seed=11, images_per_id=4)
        a, b = files_under(tmp_path / f"a-{layout}"), files_under(tmp_path / f"b-{layout}")
        assert a == b and len(a) > 10
    generate("market", tmp_path / "c", 4, seed=12, images_per_id=4)
    assert files_under(tmp_path / "c", "*.jpg") != files_under(tmp_path / "a-market", "*.jpg")


def test_many_identities_share_clothing_colours():
    outfits = [sample_identity(0, pid).outfits[0] for pid in range(1, 301)]
    pairs = Counter((o.upper_color, o.lower_color) for o in outfits)
    assert len(pairs) < 60  # 300 people, at most 60 distinct upper/lower colour combinations
    assert pairs.most_common(1)[0][1] >= 15
    assert {o.upper_color for o in outfits} == set(VOCAB["upper_color"])  # yet all colours occur


def neutral_camera(modality="visible", view="front"):
    cam = sample_camera(0, 1, modality, "indoor", False)
    return replace(cam, gain=1.0, cast=[1.0, 1.0, 1.0], haze=0.0, light_dir=0.0, resolution=1.0, scale=0.9,
                   views={"front": float(view == "front"), "back": float(view == "back"), "side": float(view == "side")},
                   blur=0.0, noise=0.0, occlusion=0.0)


def torso_colour(img: Image.Image) -> np.ndarray:
    a = np.asarray(img).astype(float)
    h, w = a.shape[:2]
    return a[int(h * 0.36):int(h * 0.42), int(w * 0.38):int(w * 0.62)].reshape(-1, 3).mean(0)


def test_images_show_the_annotated_colours():
    person = sample_identity(0, 5)
    cam = neutral_camera()
    for name in VOCAB["upper_color"]:
        outfit = replace(person.outfits[0], upper_color=name, upper_rgb=list(SHADES[name][0]), pattern="plain",
                         upper_type="sweater", backpack=None, bag=None)
        img, _ = render(person.traits, outfit, cam, np.random.default_rng(0), (128, 64))
        seen = torso_colour(img)
        nearest = min(SHADES, key=lambda c: min(np.abs(seen - np.array(s)).sum() for s in SHADES[c]))
        assert nearest == name, (name, seen)


def test_backpack_is_seen_from_behind():
    person = sample_identity(0, 5)
    plain = replace(person.outfits[0], upper_color="white", upper_rgb=[236, 236, 232], pattern="plain",
                    backpack=None, bag=None, handbag=None)
    packed = replace(plain, backpack="red", accessory_rgb={"backpack": [178, 30, 36]})
    back, front = neutral_camera(view="back"), neutral_camera(view="front")
    img_plain, info = render(person.traits, plain, back, np.random.default_rng(1), (128, 64))
    img_packed, _ = render(person.traits, packed, back, np.random.default_rng(1), (128, 64))
    assert info["view"] == "back"
    assert torso_colour(img_plain)[0] - torso_colour(img_plain)[1] < 20      # white back
    assert torso_colour(img_packed)[0] - torso_colour(img_packed)[1] > 80    # red backpack over it
    # From the front only the straps show: the chest stays white.
    img_front, _ = render(person.traits, packed, front, np.random.default_rng(1), (128, 64))
    assert torso_colour(img_front)[0] - torso_colour(img_front)[1] < 20


def test_infrared_loses_clothing_colour_but_keeps_accessories():
    person = sample_identity(0, 8)
    cam = neutral_camera("infrared", view="back")
    red = replace(person.outfits[0], upper_color="red", upper_rgb=[178, 30, 36], lower_color="black",
                  lower_rgb=[22, 22, 26], backpack=None)
    blue = replace(red, upper_color="blue", upper_rgb=[38, 58, 140], lower_color="white", lower_rgb=[236, 236, 232])
    a, _ = render(person.traits, red, cam, np.random.default_rng(2), (128, 64))
    b, _ = render(person.traits, blue, cam, np.random.default_rng(2), (128, 64))
    assert a.tobytes() == b.tobytes()
    bag = replace(red, backpack="black", accessory_rgb={"backpack": [22, 22, 26]})
    c, _ = render(person.traits, bag, cam, np.random.default_rng(2), (128, 64))
    assert a.tobytes() != c.tobytes()


def test_captions_are_true_to_the_view_and_modality():
    person = sample_identity(0, 2)
    outfit = replace(person.outfits[0], glasses=True, pattern="logo", upper_color="green", upper_type="t-shirt")
    for seed in range(5):
        rng = np.random.default_rng(seed)
        front = captions(person.traits, outfit, "front", "visible", rng, n=3)
        back = captions(person.traits, outfit, "back", "visible", rng)
        ir = captions(person.traits, outfit, "front", "infrared", rng)
        assert len(set(front)) == 3 and all("green" in c for c in front)
        assert not any("glasses" in c or "logo" in c for c in back)
        assert not {w for c in ir for w in re.findall(r"[a-z]+", c.lower())} & COLOUR_WORDS
    with pytest.raises(ValueError, match="n must be 2 or more"):
        captions(person.traits, outfit, "front", "visible", np.random.default_rng(0), n=1)


def test_every_caption_names_build_and_height_and_visible_ones_skin_tone():
    from chatreid.data.synthpeds.captions import BUILD_AFTER, BUILD_BEFORE, HEIGHT_AFTER, HEIGHT_BEFORE
    from chatreid.data.synthpeds.world import height_class, skin_name

    def says(caption, words):
        return any(re.search(rf"\b{re.escape(w)}\b", caption) for w in words)

    for pid in range(1, 13):
        person = sample_identity(5, pid)
        t, outfit = person.traits, person.outfits[0]
        build = BUILD_BEFORE[t.build] + BUILD_AFTER[t.build] + [f"{t.build} build"]
        height = HEIGHT_BEFORE[height_class(t.height)] + HEIGHT_AFTER[height_class(t.height)]
        if t.build == height_class(t.height) == "average":
            build, height = build + ["average height and build"], height + ["average height and build"]
        for modality in ("visible", "infrared"):
            # n=5: one caption of each of the five templates
            for c in captions(t, outfit, "front", modality, np.random.default_rng(pid), n=5):
                assert says(c, build) and says(c, height), c
                if modality == "visible":
                    assert re.search(rf"\b{skin_name(t.skin)} (skin|complexion)\b", c), c
                else:
                    assert not re.search(r"skin|complexion", c), c


def test_images_junk_crops_included_are_those_the_captions_change_left_alone(tmp_path):
    # Captions share each image's generator with its rendering and a junk image's cropping: new
    # wording that drew from it would move every junk crop. Pixels recorded before the captions
    # named build, height and skin tone.
    layouts.generate("market", tmp_path / "w", 4, seed=1, size=(64, 32), images_per_id=4, junk=3)
    h = hashlib.sha256()
    for f in sorted((tmp_path / "w").rglob("*.jpg")):
        h.update(f.name.encode())
        h.update(np.asarray(Image.open(f)).tobytes())
    assert h.hexdigest()[:16] == "b90600fff6d768e5"


def test_cli_writes_refuses_to_overwrite_and_overwrites(tmp_path, capsys):
    out = tmp_path / "w"
    assert cli(["synth", "--layout", "market", "--ids", "4", "--images-per-id", "4", "--seed", "1",
                "--size", "96x48", "--out", str(out)]) == 0
    assert "wrote 16 images" in capsys.readouterr().out
    assert Image.open(next((out / "query").iterdir())).size == (48, 96)
    (out / "stray.txt").write_text("mine")
    assert cli(["synth", "--layout", "market", "--ids", "4", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "stray.txt").exists()
    assert cli(["synth", "--layout", "sysu", "--ids", "3", "--images-per-id", "2", "--out", str(out), "--overwrite"]) == 0
    assert not (out / "stray.txt").exists() and (out / "exp" / "test_id.txt").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["w"]  # no temporary folders left behind


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'prcc'"):
        generate("prcc", tmp_path / "x", 10)
    with pytest.raises(ValueError, match="--ids"):
        generate("sysu", tmp_path / "x", 2)
    with pytest.raises(ValueError, match="--images-per-id"):
        generate("market", tmp_path / "x", 10, images_per_id=3)
    with pytest.raises(ValueError, match="--size"):
        generate("market", tmp_path / "x", 10, size=(8, 4))
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError, match="not a folder"):
        generate("market", tmp_path / "file", 10)
    assert not (tmp_path / "x").exists()


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    real = layouts.render

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(layouts, "render", failing)
    with pytest.raises(KeyboardInterrupt):
        generate("market", tmp_path / "out", 4, images_per_id=4)
    assert list(tmp_path.iterdir()) == []


def test_load_ground_truth_names_bad_lines(tmp_path):
    with pytest.raises(FileNotFoundError, match="synthpeds.jsonl"):
        load_ground_truth(tmp_path)
    good = {"path": "query/a.jpg", "pid": 1, "camid": 1, "clothes_id": "1_1", "modality": "visible",
            "split": "query", "attributes": {"gender": "male"}, "captions": ["one", "two"]}
    gt = tmp_path / GROUND_TRUTH
    cases = [
        ([good, "{oops"], r"synthpeds.jsonl:2: not valid JSON"),
        ([{k: v for k, v in good.items() if k != "camid"}], r":1: missing field 'camid'"),
        ([{**good, "attributes": {"gender": "robot"}}], r":1: attribute 'gender' has value 'robot'"),
        ([{**good, "captions": ["only one"]}], r":1: field 'captions'"),
        ([good, good], r":2: path 'query/a.jpg' listed twice"),
    ]
    for lines, message in cases:
        gt.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
        with pytest.raises(ValueError, match=message):
            load_ground_truth(tmp_path)
    gt.write_text(json.dumps(good) + "\n")
    assert load_ground_truth(tmp_path)["query/a.jpg"]["pid"] == 1


def test_cameras_of_each_layout():
    assert sorted(cameras("market", 0)) == list(range(1, 7))
    sysu = cameras("sysu", 0)
    assert {c for c, cam in sysu.items() if cam.modality == "infrared"} == {3, 6}
    assert {c for c, cam in sysu.items() if cam.setting == "indoor"} == {1, 2, 3}
    assert len(cameras("ltcc", 0)) == 12
    # Cameras differ in light and colour cast.
    casts = {tuple(np.round(cam.cast, 3)) for cam in cameras("market", 0).values()}
    assert len(casts) == 6


def test_color_histogram_features(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)) for _ in range(3)]
    imgs.append(Image.new("RGB", (40, 100), (200, 30, 30)))
    imgs[0].save(tmp_path / "a.png")
    f = color_histogram_features([*imgs, tmp_path / "a.png", np.asarray(imgs[1])])
    assert f.shape == (6, 6 * (8 * 4 * 4 + 4)) and np.allclose(f.sum(1), 1)
    assert np.allclose(f[0], f[4]) and np.allclose(f[1], f[5])  # path and array give the image's feature
    for dist in (cosine_distance, chi_square_distance):
        d = dist(f, f)
        assert np.allclose(np.diag(d), 0, atol=1e-5) and np.allclose(d, d.T, atol=1e-5)
        assert d[3, 0] > d[1, 0]  # a plain red image is further from noise than other noise is
    assert color_histogram_features([]).shape == (0, 6 * 132)
    with pytest.raises(ValueError, match="expected PIL images"):
        color_histogram_features([42])


def test_histogram_baseline_is_far_from_perfect(tmp_path):
    from chatreid.metrics import evaluate_reid

    root = tmp_path / "m"
    generate("market", root, 30, seed=0, images_per_id=5)
    truth = load_ground_truth(root)
    q = [r for r in truth.values() if r["split"] == "query"]
    g = [r for r in truth.values() if r["split"] == "gallery"]
    fq = color_histogram_features([root / r["path"] for r in q])
    fg = color_histogram_features([root / r["path"] for r in g])
    col = lambda rows, k: np.array([r[k] for r in rows])  # noqa: E731
    res = evaluate_reid(chi_square_distance(fq, fg), col(q, "pid"), col(g, "pid"), col(q, "camid"), col(g, "camid"),
                        protocol="market")
    chance = np.mean([np.mean(col(g, "pid") == r["pid"]) for r in q])
    assert chance < res["rank1"] < 0.8, res


def test_market_distractors_and_junk(tmp_path, capsys):
    generate("market", tmp_path / "plain", 6, seed=4, images_per_id=4)
    assert cli(["synth", "--layout", "market", "--ids", "6", "--seed", "4", "--images-per-id", "4",
                "--distractors", "4", "--junk", "3", "--out", str(tmp_path / "extra")]) == 0
    plain, extra = files_under(tmp_path / "plain", "*.jpg"), files_under(tmp_path / "extra", "*.jpg")
    assert {k: extra[k] for k in plain} == plain  # every other image is byte-identical
    added = sorted(set(extra) - set(plain))
    assert len(added) == 7 and all(k.startswith("bounding_box_test/") for k in added)
    assert sum(Path(k).name.startswith("0000_c") for k in added) == 4
    assert sum(Path(k).name.startswith("-1_c") for k in added) == 3
    truth = load_ground_truth(tmp_path / "extra")
    test_people = {row["pid"] for row in truth.values() if row["split"] == "gallery" and row["pid"] > 0}
    for k in added:
        row = truth[k]
        assert row["split"] == "gallery" and row["pid"] == (0 if row["kind"] == "distractor" else -1)
        if row["kind"] == "distractor":  # people who are not in the world
            assert row["person"] >= layouts.DISTRACTOR_KEY and row["person"] not in test_people
        else:  # a fragment of a test person's crop, vouching for no attribute
            assert row["person"] in test_people and row["attributes"] == {}
    # one person per distractor: no two distractor images show the same person
    assert len({truth[k]["person"] for k in added if truth[k]["kind"] == "distractor"}) == 4
    for layout in ("ltcc", "sysu", "pedes"):
        with pytest.raises(ValueError, match=f"--junk: only the market layout .* not {layout}"):
            generate(layout, tmp_path / layout, 6, junk=1)
    with pytest.raises(ValueError, match="--distractors: expected a count >= 0, got -1"):
        generate("market", tmp_path / "neg", 6, distractors=-1)

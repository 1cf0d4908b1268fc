"""The Re-ID baseline (train/baseline.py) and the text-to-image pre-filter (train/text_prefilter.py):
training end to end on tiny SynthPeds worlds, the saved folders, loading them as pre-filters in
the engine, eval/run.py and the app, clear errors for bad paths, and pushes at the faked Hub."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hub_fakes import FakeApi, hub_error

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "eval"))

import run as eval_run  # noqa: E402

from chatreid.baseline import BaselineError, load_baseline  # noqa: E402
from chatreid.baseline.train import (BaselineArguments, PKSampler, augment, batch_hard_triplet,  # noqa: E402
                                     train)

TINY = dict(image_size="64x32", ids_per_batch=4, images_per_id=2, warmup_epochs=1, seed=0)


def _script(name):
    spec = importlib.util.spec_from_file_location(f"chatreid_train_{name}", REPO / "train" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _images(records):
    return [Image.open(r.path).convert("RGB") for r in records]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from chatreid.data.synthpeds.layouts import generate

    return generate("market", tmp_path_factory.mktemp("bl") / "market", 8, seed=4, size=(64, 32))["out"]


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    """One short training run shared by the tests that only read its folder."""
    out = tmp_path_factory.mktemp("runs") / "baseline"
    res = train(BaselineArguments(out=str(out), dataset=f"synthpeds:{world}", epochs=6, **TINY), progress=False)
    return res


# -- the pieces ------------------------------------------------------------------------------
def test_pk_sampler_gives_p_identities_of_k_images():
    labels = torch.tensor([0] * 9 + [1] * 2 + [2] * 5 + [3] * 8)
    batches = list(PKSampler(labels, p=2, k=4, seed=1))
    assert batches
    for b in batches:
        ids = labels[b].tolist()
        assert len(b) == 8 and sorted({ids.count(c) for c in set(ids)}) == [4] and len(set(ids)) == 2
    # identity 1 has two images: drawn with replacement, never another identity's
    assert all(set(labels[b].tolist()) <= {0, 1, 2, 3} for b in batches)


def test_batch_hard_triplet_picks_the_hardest_pairs():
    f = torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0], [10.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    loss = batch_hard_triplet(f, y, margin=0.3)
    # anchor 0: farthest positive 3, nearest negative 1 -> 2.3; anchor 1: 3 vs 2 -> 1.3;
    # anchor 2: 9 vs 1 -> 8.3; anchor 3: 9 vs 7 -> 2.3
    assert loss.item() == pytest.approx((2.3 + 1.3 + 8.3 + 2.3) / 4, abs=1e-4)
    loss.backward()
    assert torch.isfinite(f.grad).all()


def test_augment_keeps_shape_and_range_and_erases_some():
    x = torch.rand(16, 3, 64, 32)
    out = augment(x.clone(), torch.Generator().manual_seed(0), erasing_prob=1.0)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    fill = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    erased = (out - fill).abs().amax(1) < 1e-6
    assert (erased.flatten(1).sum(1) > 0).all()  # every image got a rectangle at p=1
    gray = augment(x.clone(), torch.Generator().manual_seed(0), erasing_prob=0.0, grayscale_prob=1.0)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])


# -- training and the folder -------------------------------------------------------------------
def test_trainer_writes_a_loadable_folder_with_config_and_card(trained, world):
    out = trained.out
    assert {"config.json", "model.safetensors", "README.md", "training_log.json"} <= {p.name for p in out.iterdir()}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "chatreid-reid-baseline" and cfg["backbone"] == "efficientnet_lite0"
    assert cfg["image_size"] == [64, 32] and cfg["num_classes"] == trained.num_ids == 4
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "person-re-identification" in card and "triplet" in card
    assert f"synthpeds at {world}" in card
    base = load_baseline(out)
    feats = base.encode(_images([r for r in _records(world) if r.split == "gallery"][:5]))
    assert feats.shape == (5, 1280) and np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-5)


def test_training_loss_falls(trained):
    h = trained.history
    assert len(h) == 6
    assert h[-1]["loss"] < 0.85 * h[0]["loss"], [e["loss"] for e in h]


def test_a_failed_save_keeps_the_good_folder(trained, world, tmp_path, monkeypatch):
    import shutil

    import chatreid.baseline.train as T

    out = tmp_path / "baseline"
    shutil.copytree(trained.out, out)
    before = (out / "model.safetensors").read_bytes()

    def crash(model, config, folder, card=None):  # as save_baseline: the folder may already exist
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(T, "save_baseline", crash)
    with pytest.raises(OSError, match="disk full"):
        train(BaselineArguments(out=str(out), dataset=f"synthpeds:{world}", epochs=1, max_steps=1, **TINY), progress=False)
    assert (out / "model.safetensors").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".baseline.tmp-")]  # the half folder is gone
    load_baseline(out)


def test_script_trains_from_an_image_store_and_pushes_to_the_faked_hub(world, tmp_path, monkeypatch, capsys):
    from chatreid.data.builder import build

    store = tmp_path / "store"
    build([("synthpeds", world, {})], store, progress=False)
    made = []

    class Api(FakeApi):  # a class, not a function: transformers annotates with ``HfApi | None``
        def __init__(self, token=None):
            super().__init__(token)
            made.append(self)

    class Refusing(FakeApi):
        def __init__(self, token=None):
            super().__init__(token, fail=hub_error(401))

    monkeypatch.setattr("huggingface_hub.HfApi", Api)
    script = _script("baseline")
    out = tmp_path / "bl"
    rc = script.cli(["--store", str(store), "--out", str(out), "--image_size", "64x32", "--epochs", "1",
                     "--max_steps", "2", "--ids_per_batch", "2", "--images_per_id", "2",
                     "--push_to_hub", "--hub_model_id", "me/chatreid-baseline"])
    assert rc == 0, capsys.readouterr().err
    (api,) = made
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"] and api.calls[0][1] == "me/chatreid-baseline"
    assert {"config.json", "model.safetensors", "README.md"} <= set(api.uploaded)
    assert json.loads((out / "config.json").read_text())["training"]["source"] == f"image store {store}"

    # a refused push: exit code 3, one line saying where the folder is, the folder intact
    monkeypatch.setattr("huggingface_hub.HfApi", Refusing)
    rc = script.cli(["--store", str(store), "--out", str(out), "--image_size", "64x32", "--epochs", "1",
                     "--max_steps", "1", "--ids_per_batch", "2", "--images_per_id", "2", "--push_to_hub"])
    assert rc == 3 and f"kept at {out}" in capsys.readouterr().err
    load_baseline(out)


def test_script_refuses_bad_input_in_one_line(tmp_path, capsys):
    script = _script("baseline")
    assert script.cli(["--out", str(tmp_path / "x")]) == 2
    assert "exactly one of --store" in capsys.readouterr().err
    assert script.cli(["--dataset", f"synthpeds:{tmp_path}/missing", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing" in err
    assert script.cli(["--store", str(tmp_path), "--image_size", "256by128", "--out", str(tmp_path / "x")]) == 2
    assert "--image_size" in capsys.readouterr().err


# -- loading: good and bad paths ---------------------------------------------------------------
def test_bad_paths_give_one_line_naming_them(tmp_path):
    from chatreid.retrieval.prefilter import build_prefilter, check_prefilter

    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "qwen2_vl"}')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    cases = {tmp_path / "empty": "no config.json", tmp_path / "other": "model_type is 'qwen2_vl'",
             tmp_path / "broken": "not valid JSON", tmp_path / "a" / "b" / "c": "unknown prefilter"}
    for path, why in cases.items():
        with pytest.raises(BaselineError) as err:
            check_prefilter(str(path))
        assert why in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="unknown prefilter 'sift'"):
        build_prefilter("sift")
    # a Hub-id-shaped name, offline and not cached: one line that says so
    with pytest.raises(BaselineError, match="HF_HUB_OFFLINE") as err:
        check_prefilter("nobody/no-such-baseline")
    assert "\n" not in str(err.value)


def test_engine_uses_the_baseline_as_its_prefilter(trained, world, tiny_model_dir):
    from chatreid.model import load_model_and_processor
    from chatreid.retrieval import Query, ReIDEngine

    recs = _records(world)
    q = [r for r in recs if r.split == "query"][0]
    gallery = _images([r for r in recs if r.split == "gallery"])
    model, processor = load_model_and_processor(str(tiny_model_dir))
    engine = ReIDEngine(model, processor, prefilter=str(trained.out))
    res = engine.search(Query(images=_images([q])), gallery, top_k=3)
    assert res.num_scored == 3
    base = load_baseline(trained.out)
    want = base.encode(gallery) @ base.encode(_images([q]))[0]
    assert np.allclose(res.prefilter_scores, want, atol=1e-5)


def test_eval_run_takes_a_baseline_path_and_refuses_a_bad_one(trained, world, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = eval_run.main(["--model", str(tiny_model_dir), "--dataset", f"synthpeds:{world}", "--prefilter",
                        str(trained.out), "--top-k", "1", "--vis", "0", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    (res,) = [json.loads(p.read_text()) for p in out.glob("*/results.json")]
    assert res["prefilter"] == str(trained.out) and 0 <= res["mean"]["mAP"] <= 1

    capsys.readouterr()
    rc = eval_run.main(["--model", str(tiny_model_dir), "--dataset", f"synthpeds:{world}", "--prefilter",
                        str(tmp_path), "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("eval/run.py: error:") and str(tmp_path) in err and "not a Re-ID baseline folder" in err


def test_app_refuses_a_bad_prefilter_setting_before_loading(tmp_path, monkeypatch, capsys):
    import app

    monkeypatch.setenv("CHATREID_PREFILTER", str(tmp_path))
    monkeypatch.setattr(app, "load_engine", lambda choice: pytest.fail("the model was loaded"))
    with pytest.raises(SystemExit) as exit_:
        app.main([])
    msg = capsys.readouterr().err
    assert exit_.value.code == 2 and msg.count("\n") == 1
    assert msg.startswith("app.py: error: CHATREID_PREFILTER:") and str(tmp_path) in msg


def test_app_loads_the_engine_with_the_prefilter_setting(trained, monkeypatch):
    from chatreid.chat.settings import app_default_model, load_engine
    from chatreid.retrieval import ReIDEngine

    seen = {}
    monkeypatch.setattr(ReIDEngine, "from_pretrained", classmethod(lambda cls, name, **kw: seen.update(kw)))
    monkeypatch.setenv("CHATREID_PREFILTER", str(trained.out))
    load_engine(app_default_model("some/model"))
    assert seen["prefilter"] == str(trained.out)
    monkeypatch.delenv("CHATREID_PREFILTER")
    load_engine(app_default_model("some/model"))
    assert seen["prefilter"] == "efficientnet_lite0"


def _records(root):
    from chatreid.data import read

    return read("synthpeds", root)


# -- held-out identities ------------------------------------------------------------------------
def _rank1_map(feats_q, feats_g, q, g):
    from chatreid.metrics import evaluate_reid

    res = evaluate_reid(-(feats_q @ feats_g.T), [r.pid for r in q], [r.pid for r in g], [r.camid for r in q],
                        [r.camid for r in g], protocol="market")
    return res["rank1"], res["mAP"]


@pytest.mark.slow
def test_trained_baseline_separates_held_out_identities(tmp_path):
    """20 train identities, 20 held out, 8 short epochs at 64x32: the trained features rank a
    held-out person's other images far above chance (chance: random distance matrices)."""
    from chatreid.data.synthpeds.layouts import generate

    root = generate("market", tmp_path / "w", 40, seed=11, size=(64, 32))["out"]
    res = train(BaselineArguments(out=str(tmp_path / "bl"), dataset=f"synthpeds:{root}", epochs=8,
                                  **{**TINY, "ids_per_batch": 8}), progress=False)
    recs = _records(root)
    q = [r for r in recs if r.split == "query"]
    g = [r for r in recs if r.split == "gallery"]
    base = load_baseline(res.out)
    r1, mAP = _rank1_map(base.encode(_images(q)), base.encode(_images(g)), q, g)
    rng = np.random.default_rng(0)
    chance = np.mean([_rank1_map(rng.normal(size=(len(q), 8)), rng.normal(size=(len(g), 8)), q, g)
                      for _ in range(20)], axis=0)
    # measured: Rank-1 0.27 and mAP 0.19 against chance 0.03 and 0.06
    assert r1 > chance[0] + 0.15 and mAP > chance[1] + 0.08, (r1, mAP, chance)


# -- the text-to-image pre-filter ----------------------------------------------------------------
@pytest.fixture(scope="module")
def text_prefilter(trained, tmp_path_factory):
    from chatreid.baseline.text import TextPrefilterArguments, train_text_prefilter
    from chatreid.data.synthpeds.layouts import generate

    base = tmp_path_factory.mktemp("t2i")
    root = generate("pedes", base / "pedes", 120, seed=5, size=(64, 32))["out"]
    report = train_text_prefilter(TextPrefilterArguments(baseline=str(trained.out), dataset=f"synthpeds:{root}",
                                                         out=str(base / "t2i"), epochs=30, batch_size=64,
                                                         top_k="1,5,10"), progress=False)
    return report, root


def test_text_prefilter_recall_beats_random(text_prefilter):
    report, _ = text_prefilter
    held = report["held_out"]
    assert held["gallery"] > 10 and held["queries"] >= held["gallery"]
    assert held["recall"][1] > 2 * held["chance"][1] and held["recall"][5] > held["chance"][5] + 0.15, held
    assert report["history"][-1]["loss"] < report["history"][0]["loss"]
    folder = Path(report["out"])
    assert {"config.json", "model.safetensors", "vocab.json", "README.md", "image_encoder"} <= {p.name for p in folder.iterdir()}
    assert "recall@k" in (folder / "README.md").read_text()


def test_text_prefilter_cuts_the_gallery_for_text_queries(text_prefilter, tiny_model_dir, tmp_path, capsys):
    from chatreid.model import load_model_and_processor
    from chatreid.retrieval import Query, ReIDEngine

    report, root = text_prefilter
    recs = [r for r in _records(root) if r.split == "gallery"]
    model, processor = load_model_and_processor(str(tiny_model_dir))
    engine = ReIDEngine(model, processor, prefilter=report["out"])
    assert engine.prefilter.supports_text
    gallery = _images(recs)
    res = engine.search(Query(text=recs[0].captions[0], task="text_to_image"), gallery, top_k=4)
    assert res.num_scored == 4 and sorted(res.ranking) == list(range(len(gallery)))
    # image queries still use the baseline inside the folder
    assert engine.search(Query(images=gallery[:1]), gallery, top_k=2).num_scored == 2
    # the chat sends its top_k (CHATREID_TOP_K) with a described person too, so the VLM scores only
    # the text pre-filter's head rather than the whole gallery
    from chatreid.chat.conversation import Conversation, GalleryItem

    conv = Conversation()
    conv.set_gallery([GalleryItem(f"g{i}.png", im) for i, im in enumerate(gallery)])
    conv.respond(f"find {recs[0].captions[0]}", engine, task="text_to_image", top_k=3)
    assert conv.last.num_scored == 3

    out = tmp_path / "out"
    rc = eval_run.main(["--model", str(tiny_model_dir), "--dataset", f"synthpeds:{root}", "--protocol", "t2i",
                        "--prefilter", report["out"], "--top-k", "3", "--vis", "0", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert "cannot be pre-filtered" not in capsys.readouterr().out
    rows = [json.loads(line) for p in out.glob("*/trial_0/rankings.*.jsonl") for line in p.read_text().splitlines()]
    assert rows and all(r["num_scored"] == 3 for r in rows)


def test_a_model_folder_ships_its_text_prefilter_and_runs_with_it_by_default(text_prefilter, tiny_model_dir,
                                                                             tmp_path, monkeypatch, capsys):
    import shutil

    from chatreid.chat.settings import app_prefilter
    from chatreid.demo.text_prefilter import compact
    from chatreid.model import load_model_and_processor
    from chatreid.retrieval import Query, ReIDEngine
    from chatreid.retrieval.prefilter import TrainedBaseline, default_prefilter

    report, root = text_prefilter
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    assert default_prefilter(str(model_dir)) == "efficientnet_lite0"  # nothing shipped: the ImageNet default
    shipped = model_dir / "text-prefilter"
    shutil.copytree(report["out"], shipped)
    compact(shipped)
    cfg = json.loads((shipped / "config.json").read_text())
    (shipped / "config.json").write_text(json.dumps({**cfg, "head": 3}))
    # half-precision weights without the ID classifier: smaller, and the same ranking to 1e-2
    size = lambda d: sum(p.stat().st_size for p in Path(d).rglob("*.safetensors"))  # noqa: E731
    assert size(shipped) < 0.6 * size(report["out"])
    recs = [r for r in _records(root) if r.split == "gallery"]
    gallery, caption = _images(recs), recs[0].captions[0]
    full, small = TrainedBaseline(report["out"]), TrainedBaseline(str(shipped))
    assert np.abs(full.text_similarity(caption, full.features(gallery))
                  - small.text_similarity(caption, small.features(gallery))).max() < 1e-2

    name = default_prefilter(str(model_dir))
    assert name == f"efficientnet_lite0+{shipped}"
    assert app_prefilter(str(model_dir)) == name
    monkeypatch.setenv("CHATREID_PREFILTER", "color_histogram")  # the setting still overrides
    assert app_prefilter(str(model_dir)) == "color_histogram"
    model, processor = load_model_and_processor(str(model_dir))
    engine = ReIDEngine(model, processor, prefilter=name)
    plain = ReIDEngine(model, processor, prefilter="efficientnet_lite0")
    # photo queries: the ImageNet pre-filter's similarities; captions: the text pre-filter's, and
    # with no top_k the VLM scores the text pre-filter's head
    photo = Query(images=gallery[1:2])
    assert np.allclose(engine.search(photo, gallery, top_k=2).prefilter_scores,
                       plain.search(photo, gallery, top_k=2).prefilter_scores, atol=1e-5)
    res = engine.search(Query(text=caption, task="text_to_image"), gallery)
    assert res.num_scored == 3
    assert np.allclose(res.prefilter_scores, small.text_similarity(caption, small.features(gallery)), atol=1e-5)
    assert engine.search(Query(text=caption, task="text_to_image"), gallery, top_k=5).num_scored == 5

    out = tmp_path / "out"
    rc = eval_run.main(["--model", str(model_dir), "--dataset", f"synthpeds:{root}", "--protocol", "t2i",
                        "--vis", "0", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    result = json.loads(next(out.glob("*/results.json")).read_text())
    assert result["prefilter"] == name and result["text_head"] == 3
    rows = [json.loads(line) for p in out.glob("*/trial_0/rankings.*.jsonl") for line in p.read_text().splitlines()]
    assert rows and all(r["num_scored"] == 3 for r in rows)


def test_plain_baseline_has_no_text_side(trained, tiny_model_dir):
    from chatreid.model import load_model_and_processor
    from chatreid.retrieval import Query, ReIDEngine

    model, processor = load_model_and_processor(str(tiny_model_dir))
    engine = ReIDEngine(model, processor, prefilter=str(trained.out))
    gallery = [Image.new("RGB", (32, 64), (i * 20, 0, 0)) for i in range(3)]
    with pytest.raises(ValueError, match="top_k/tau need pre-filter similarities"):
        engine.search(Query(text="a man in red", task="text_to_image"), gallery, top_k=2)


def test_text_prefilter_script_refuses_a_missing_baseline_in_one_line(tmp_path, capsys):
    rc = _script("text_prefilter").cli(["--baseline", str(tmp_path / "nope"), "--dataset", f"synthpeds:{tmp_path}",
                                        "--out", str(tmp_path / "t2i")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("train/text_prefilter.py: error:") and str(tmp_path / "nope") in err
    assert not (tmp_path / "t2i").exists()


@pytest.mark.parametrize("name,make", [("market1501", "make_market"), ("sysu_mm01", "make_sysu")])
def test_trainer_reads_real_benchmark_layouts(name, make, tmp_path):
    """The benchmark readers' fixture folders (tests/layouts.py): Market-1501 with its junk and
    distractor files, SYSU-MM01 with greyscale infrared images; then a text pre-filter on a
    CUHK-PEDES fixture over the same baseline."""
    import layouts

    root = getattr(layouts, make)(tmp_path / name)
    res = train(BaselineArguments(out=str(tmp_path / "bl"), dataset=f"{name}:{root}", epochs=1, max_steps=1,
                                  **{**TINY, "ids_per_batch": 2}), progress=False)
    assert res.num_ids >= 2 and load_baseline(res.out).config["training"]["datasets"] == [name]

    from chatreid.baseline.text import TextPrefilterArguments, load_text_prefilter, train_text_prefilter

    pedes = layouts.make_pedes(tmp_path / "pedes", "cuhk_pedes")
    report = train_text_prefilter(TextPrefilterArguments(baseline=str(res.out), dataset=f"cuhk_pedes:{pedes}",
                                                         out=str(tmp_path / "t2i"), epochs=2, min_count=1),
                                  progress=False)
    pre = load_text_prefilter(report["out"])
    assert pre.text_features(["a man in a red coat"]).shape == (1, 256)

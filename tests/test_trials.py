"""Trials without leaks: RegDB's trials and CUHK03 classic's splits are each scored by a
checkpoint and pre-filter trained on that split alone; the split travels from the reader through
the store and training into the checkpoint. And tau: calibrated for a recall, stored with the
pre-filter, read by --tau auto; what falls below it is counted and shown."""

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "eval"))

import run  # noqa: E402  (the eval/run.py script)
from layouts import make_cuhk03_mat, make_regdb  # noqa: E402

from chatreid.data import read, trials  # noqa: E402
from chatreid.evaluation import benchmarks, harness  # noqa: E402
from chatreid.evaluation import tables as table  # noqa: E402
from chatreid.retrieval import prefilter  # noqa: E402


def _args(template):
    """What eval/run.py parsed for one --model and the colour-histogram pre-filter."""
    return SimpleNamespace(model=[template], prefilter="color_histogram", tau=None)


def _trials_of(name, root, trials=None, **options):
    options = benchmarks.resolve_options(name, str(root), options)
    protocol = benchmarks.check_protocol(name, str(root), None, options)
    return benchmarks.load_trials(name, str(root), protocol, trials, options)


def _checkpoint(folder: Path, config: dict) -> str:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


SPLIT_BENCHMARKS = [("regdb", make_regdb, "RegDB", {}, "trial"),
                    ("cuhk03", make_cuhk03_mat, "cuhk03", {"cuhk03_layout": "classic"}, "split")]


@pytest.mark.parametrize("name, make, folder, options, option", SPLIT_BENCHMARKS)
def test_a_checkpoint_never_scores_identities_it_trained_on(tmp_path, name, make, folder, options, option):
    root = tmp_path / folder
    make(root)
    # the RegDB fixture holds two trials (persons 1-2 / 3-4 swap roles), the CUHK03 file all 20 splits
    found = _trials_of(name, root, trials=2 if name == "regdb" else None, **options)
    assert [t.split for t in found] == ([1, 2] if name == "regdb" else list(range(20)))
    # one checkpoint per trial, each recording the split it trained on (as train/sft.py writes it)
    ckpts = tmp_path / "ckpt"
    for t in found:
        _checkpoint(ckpts / f"{name}-trial{t.split}", {"chatreid_stage": 3, "chatreid_trials": {name: [t.split]}})
    template = str(ckpts / f"{name}-trial{{trial}}")
    harness.check_trials(_args(template), found, name)  # accepted
    for t in found:
        path = harness.checkpoint_path(template, t, "--model")
        trained_split = json.loads(Path(path, "config.json").read_text())["chatreid_trials"][name]
        trained = {r.pid for r in read(name, root, **{option: trained_split[0]}) if r.split == "train"}
        scored = {q.pid for q in t.queries} | {g.pid for g in t.gallery}
        assert trained and scored and not trained & scored, (t.name, trained & scored)
    # one checkpoint trained on the first split, over every trial: refused, in one line
    first = found[0].split
    single = _checkpoint(tmp_path / "one", {"chatreid_stage": 3, "chatreid_trials": {name: [first]}})
    with pytest.raises(ValueError) as err:
        harness.check_trials(_args(single), found, name)
    msg = str(err.value)
    assert "\n" not in msg and f"{name} {option}(s) {first}" in msg and f"{option} {found[1].split}" in msg
    harness.check_trials(_args(single), found[:1], name)  # its own trial alone: fine
    # a stage that inherits another split's training has seen both: refused for each
    both = _checkpoint(tmp_path / "both", {"chatreid_stage": 3, "chatreid_trials": {name: [first, found[1].split]}})
    with pytest.raises(ValueError, match="trained on"):
        harness.check_trials(_args(both), found[:1], name)


def test_the_split_travels_from_reader_to_store_to_checkpoint(tmp_path):
    from chatreid.data.builder import build
    from chatreid.data.store import ImageStore
    from chatreid.training.sft import trained_trials

    root = make_regdb(tmp_path / "RegDB")
    assert read("regdb", root, trial=2).trial == 2 and read("market1501", _market(tmp_path)).trial is None
    build([("regdb", str(root), {"trial": 2})], tmp_path / "store", progress=False)
    store = ImageStore.load(str(tmp_path / "store"))
    assert store.trials() == {"regdb": 2}
    assert trained_trials(store, None) == {"regdb": [2]}
    # stage 3 from a stage 2 trained on trial 1: it has seen both splits' training identities
    prev = _checkpoint(tmp_path / "stage2", {"model_type": "qwen2_vl", "chatreid_stage": 2,
                                             "chatreid_trials": {"regdb": [1]}})
    assert trained_trials(store, prev) == {"regdb": [1, 2]}
    # a previous stage that does not say: not recorded
    old = _checkpoint(tmp_path / "old", {"model_type": "qwen2_vl", "chatreid_stage": 2})
    assert trained_trials(store, old) is None
    assert trials.status(None, "regdb", 2) == "not recorded"
    assert trials.status({"market1501": [0]}, "regdb", 2) == "not trained on it"
    assert harness.model_trials({}) == {} and harness.model_trials({"chatreid_stage": 1}) is None


def _market(tmp_path):
    from layouts import make_market

    return make_market(tmp_path / "Market")


def test_per_trial_checkpoints_end_to_end(tiny_model_dir, tmp_path, capsys):
    root = make_regdb(tmp_path / "RegDB")
    for t in (1, 2):
        shutil.copytree(tiny_model_dir, tmp_path / f"regdb-trial{t}")
        cfg = tmp_path / f"regdb-trial{t}" / "config.json"
        cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "chatreid_stage": 3, "chatreid_trials": {"regdb": [t]}}))
    common = ["--dataset", f"regdb:{root}", "--prefilter", "color_histogram", "--vis", "0", "--top-k", "2"]
    rc = run.main(["--model", str(tmp_path / "regdb-trial{trial}"), "--label", "per-trial", "--out", str(tmp_path / "out"),
                   "--trials", "2"] + common)
    assert rc == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "out" / "per-trial" / "results.json").read_text())
    assert {k: (v["model"], v["model_trials"]) for k, v in res["checkpoints"].items()} == {
        "1": (str(tmp_path / "regdb-trial1"), "own trial"), "2": (str(tmp_path / "regdb-trial2"), "own trial")}
    assert "2 of 10, each scored by a checkpoint trained on that trial" in table.provenance_table([res])
    # one checkpoint of trial 1 over both trials: refused before any model loads, in one line
    capsys.readouterr()
    rc = run.main(["--model", str(tmp_path / "regdb-trial1"), "--out", str(tmp_path / "bad"), "--trials", "2"] + common)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "regdb trial(s) 1" in err and "trial 2" in err
    assert not (tmp_path / "bad").exists()
    # a checkpoint that does not say which trial: scored, and the table says what that means
    rc = run.main(["--model", str(tiny_model_dir), "--label", "unknown", "--out", str(tmp_path / "u"), "--trials", "2"]
                  + common)
    assert rc == 0
    res = json.loads((tmp_path / "u" / "unknown" / "results.json").read_text())
    assert {v["model_trials"] for v in res["checkpoints"].values()} == {"not trained on it"}  # a base model
    res["checkpoints"] = {k: dict(v, model_trials="not recorded") for k, v in res["checkpoints"].items()}
    assert "2 of 10 (**one checkpoint for all trials without a trial record" in table.provenance_table([res])
    # results made before checkpoints were recorded: not shown as clean either
    del res["checkpoints"]
    assert "what scored each trial not recorded" in table.provenance_table([res])


# -- tau ----------------------------------------------------------------------------------------
def test_calibrate_tau_by_hand():
    # query 0: matches at 0.9, 0.5; query 1: matches at 0.8, 0.3 (and 0.95, left out as junk)
    sims = [[0.9, 0.5, 0.1], [0.8, 0.3, 0.95, 0.2]]
    rel = [[1, 1, 0], [1, 1, 1, 0]]
    valid = [[1, 1, 1], [1, 1, 0, 1]]
    # four matches 0.9 > 0.8 > 0.5 > 0.3: 75% recall needs three, so tau = 0.5
    rec = prefilter.calibrate_tau(sims, rel, 0.75, valid)
    assert rec["tau"] == 0.5 and rec["recall"] == 0.75 and rec["matches"] == 4
    assert rec["gallery_kept"] == pytest.approx((2 / 3 + 1 / 3) / 2)  # 0.9, 0.5 of 3; 0.8 of 3 valid
    assert prefilter.calibrate_tau(sims, rel, 0.5, valid)["tau"] == 0.8
    assert prefilter.calibrate_tau(sims, rel, 1.0, valid)["tau"] == 0.3
    assert prefilter.calibrate_tau(sims, rel, 0.7, valid)["tau"] == 0.5  # ceil(2.8) = 3 matches
    with pytest.raises(ValueError, match="no true match"):
        prefilter.calibrate_tau([[0.1]], [[0]], 0.9)


@pytest.fixture(scope="module")
def two_worlds(tmp_path_factory):
    """A test world and a validation world of other people (another seed)."""
    from chatreid.data.synthpeds.layouts import generate

    base = tmp_path_factory.mktemp("tau")
    return {k: generate("market", base / k, 5, seed=s)["out"] for k, s in (("test", 3), ("val", 4))}


def test_tau_calibrated_end_to_end(tiny_model_dir, two_worlds, tmp_path, capsys):
    # the colour histogram has no folder: its calibration goes to --out, and --tau FILE reads it
    rc = run.main(["--task", "calibrate", "--prefilter", "color_histogram", "--dataset", f"synthpeds:{two_worlds['val']}",
                   "--target-recall", "0.8", "--out", str(tmp_path / "cal")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    cal = json.loads((tmp_path / "cal" / "tau.json").read_text())
    assert cal["prefilter"] == "color_histogram" and cal["recall"] >= 0.8 and 0 < cal["gallery_kept"] <= 1
    # the calibration's recall, checked against the pre-filter's similarities directly
    (trial,) = benchmarks.load_trials("synthpeds", two_worlds["val"], "market")
    pf = prefilter.build_prefilter("color_histogram")
    feats = pf.features(harness.load_images([g.path for g in trial.gallery]))
    kept = total = 0
    for q in trial.queries:
        sim = pf.similarity(harness.load_images([q.path]), feats)
        match = [i for i, g in enumerate(trial.gallery) if g.pid == q.pid and g.camid != q.camid]
        kept += sum(sim[i] >= cal["tau"] for i in match)
        total += len(match)
    assert kept / total == pytest.approx(cal["recall"])
    # scored with it: below-tau images counted per query and in the table
    rc = run.main(["--model", str(tiny_model_dir), "--label", "m", "--dataset", f"synthpeds:{two_worlds['test']}",
                   "--prefilter", "color_histogram", "--tau", str(tmp_path / "cal" / "tau.json"), "--vis", "0",
                   "--out", str(tmp_path / "run")])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "run" / "m" / "results.json").read_text())
    assert res["tau"] == cal["tau"] and res["tau_calibration"]["target_recall"] == 0.8
    rows = harness.read_cache(tmp_path / "run" / "m" / "trial_0")
    (test,) = benchmarks.load_trials("synthpeds", two_worlds["test"], "market")
    for q in test.queries:
        r = rows[q.qid]
        assert r["num_scored"] + r["below_tau"] == len(test.gallery)  # no top-k: all others are below tau
    assert res["mean"]["below_tau"] == pytest.approx(np.mean([rows[q.qid]["below_tau"] / len(test.gallery)
                                                              for q in test.queries]))
    text = table.provenance_table([res])
    assert "below tau, unscored, after the scored images in pre-filter order" in text and "of true matches" in text
    # --tau auto with a named pre-filter: one line saying where a calibration lives
    capsys.readouterr()
    rc = run.main(["--model", str(tiny_model_dir), "--dataset", f"synthpeds:{two_worlds['test']}", "--prefilter",
                   "color_histogram", "--tau", "auto", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "trained pre-filter's folder" in err
    # a calibration of another pre-filter is refused
    other = dict(cal, prefilter="efficientnet_lite0")
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="calibrated for pre-filter 'efficientnet_lite0'"):
        prefilter.load_calibration(str(tmp_path / "other.json"), "color_histogram")

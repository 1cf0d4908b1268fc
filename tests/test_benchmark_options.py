"""Every protocol option of the benchmarks, reachable from eval/run.py: SYSU-MM01 indoor search,
RegDB in both directions, CUHK03 detected and classic, PRCC single-shot galleries; on real-layout
fixture folders (tests/layouts.py) and SynthPeds."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "eval"))

import run  # noqa: E402  (the eval/run.py script)
from layouts import make_cuhk03, make_cuhk03_mat, make_prcc, make_regdb, make_sysu  # noqa: E402

from chatreid.evaluation import benchmarks, harness  # noqa: E402
from chatreid.metrics import evaluate_reid  # noqa: E402


class Metric:
    """The harness's metric call without loading the evaluate module."""

    compute = staticmethod(evaluate_reid)


def trials_of(name, root, protocol=None, trials=None, **options):
    options = benchmarks.resolve_options(name, str(root), options)
    protocol = benchmarks.check_protocol(name, str(root), protocol, options)
    return protocol, benchmarks.load_trials(name, str(root), protocol, trials, options)


def perfect(trial):
    """Per query: its identity's gallery images first (what a perfect re-ranker returns)."""
    return {q.qid: {"ranking": sorted(range(len(trial.gallery)), key=lambda g: trial.gallery[g].pid != q.pid)}
            for q in trial.queries}


@pytest.fixture(scope="module")
def synth_sysu(tmp_path_factory):
    from chatreid.data.synthpeds.layouts import generate

    return generate("sysu", tmp_path_factory.mktemp("w") / "sysu", 20, seed=5)["out"]


# -- SYSU-MM01: indoor search -------------------------------------------------------------------
@pytest.mark.parametrize("where", ["fixture", "synthpeds"])
def test_sysu_indoor_search(tmp_path, synth_sysu, where):
    name, root = ("sysu_mm01", make_sysu(tmp_path / "SYSU-MM01")) if where == "fixture" else ("synthpeds", synth_sysu)
    _, all_search = trials_of(name, root)
    protocol, indoor = trials_of(name, root, search_mode="indoor")
    assert [t.name for t in all_search] == [str(t) for t in range(10)]  # unchanged cache folders
    assert [t.name for t in indoor] == [f"indoor-{t}" for t in range(10)]  # never mixed with them
    assert {g.camid for t in all_search for g in t.gallery} & {4, 5}  # outdoor cameras in all-search
    for t in indoor:
        assert {g.camid for g in t.gallery} <= {1, 2} and t.options == {"search_mode": "indoor"}
        assert [q.qid for q in t.queries] == [q.qid for q in all_search[0].queries]  # same infrared queries
        keys = [(g.pid, g.camid) for g in t.gallery]
        assert len(keys) == len(set(keys))  # single-shot: one image per identity and camera
        res = harness.score_trial(Metric, t, perfect(t), protocol)
        assert res["rank1"] == 1.0
    # the metric checks the gallery against the search mode it is told
    wrong = benchmarks.Trial("x", indoor[0].queries, all_search[0].gallery, {"search_mode": "indoor"})
    with pytest.raises(ValueError, match="indoor-search gallery holds cameras"):
        harness.score_trial(Metric, wrong, perfect(wrong), protocol)


# -- RegDB: both directions ---------------------------------------------------------------------
def test_regdb_both_directions(tmp_path):
    root = make_regdb(tmp_path / "RegDB")
    _, v2t = trials_of("regdb", root, trials=2)
    _, t2v = trials_of("regdb", root, trials=2, direction="thermal_to_visible")
    assert [t.name for t in v2t] == ["1", "2"] and [t.name for t in t2v] == ["t2v-1", "t2v-2"]
    for a, b in zip(v2t, t2v):
        assert {Path(q.path).parts[-3] for q in a.queries} == {"Visible"}
        assert {Path(g.path).parts[-3] for g in a.gallery} == {"Thermal"}
        assert {Path(q.path).parts[-3] for q in b.queries} == {"Thermal"}
        assert sorted(g.path for g in b.gallery) == sorted(q.path for q in a.queries)
        assert harness.score_trial(Metric, b, perfect(b), "regdb")["mAP"] == 1.0
    assert benchmarks.num_trials("regdb", {"direction": "thermal_to_visible"}) == 10
    with pytest.raises(ValueError, match="--trials must be in 1..10 for regdb, got 11"):
        trials_of("regdb", root, trials=11)


# -- CUHK03: detected, and the classic layout ---------------------------------------------------
def test_cuhk03_np_labeled_and_detected(tmp_path):
    root = make_cuhk03(tmp_path / "cuhk03-np")
    protocol, (lab,) = trials_of("cuhk03", root)
    _, (det,) = trials_of("cuhk03", root, boxes="detected")
    assert protocol == "market" and (lab.name, det.name) == ("0", "detected-0")
    assert {q.qid.split("/")[0] for q in det.queries} == {"detected"}  # distinct cache keys too
    assert (len(lab.gallery), len(det.gallery)) == (3, 2)
    assert benchmarks.resolve_options("cuhk03", str(root)) == {"boxes": "labeled", "cuhk03_layout": "np"}


def test_cuhk03_classic_twenty_splits(tmp_path):
    root = tmp_path / "cuhk03"
    make_cuhk03_mat(root)
    protocol, trials = trials_of("cuhk03", root)
    assert protocol == "cuhk03_classic"  # the classic splits' own CMC (single gallery shot)
    assert [t.name for t in trials] == [f"classic-labeled-{s}" for s in range(20)]
    for t in trials:
        # query = gallery = the split's test images; the query's own image is junk to itself
        assert [q.path for q in t.queries] == [g.path for g in t.gallery]
        assert len({g.pid for g in t.gallery}) == 2
        assert harness.score_trial(Metric, t, perfect(t), protocol)["rank1"] == 1.0
    _, det = trials_of("cuhk03", root, boxes="detected", trials=3)
    assert [t.name for t in det] == [f"classic-detected-{s}" for s in range(3)]
    assert trials_of("cuhk03", root, protocol="market", trials=1)[0] == "market"
    make_cuhk03(root)  # both layouts in one folder: the harness asks which
    with pytest.raises(ValueError, match="--cuhk03-layout"):
        trials_of("cuhk03", root)
    assert trials_of("cuhk03", root, cuhk03_layout="np")[1][0].name == "0"
    with pytest.raises(ValueError, match="--trials must be in 1..20 for cuhk03, got 21"):
        trials_of("cuhk03", root, cuhk03_layout="classic", trials=21)


# -- PRCC: single-shot galleries ----------------------------------------------------------------
def test_prcc_single_shot_trials(tmp_path):
    root = make_prcc(tmp_path / "prcc")
    protocol, (multi,) = trials_of("prcc", root)
    _, single = trials_of("prcc", root, gallery_shot="single")
    assert protocol == "cc" and multi.name == "0" and len(multi.gallery) == 3
    assert [t.name for t in single] == [f"single-{t}" for t in range(10)]
    for t in single:
        assert sorted(g.pid for g in t.gallery) == [150, 155] and {g.camid for g in t.gallery} == {1}
        assert [q.qid for q in t.queries] == [q.qid for q in multi.queries]
        assert harness.score_trial(Metric, t, perfect(t), protocol)["rank1"] == 1.0
    assert len(trials_of("prcc", root, gallery_shot="single", trials=4)[1]) == 4
    with pytest.raises(ValueError, match="one fixed split"):
        trials_of("prcc", root, trials=2)


# -- options that do not fit -----------------------------------------------------------------------
@pytest.mark.parametrize("name, option, match", [
    ("market1501", {"search_mode": "indoor"}, "--search-mode applies to sysu_mm01 or a SynthPeds sysu world, not market1501"),
    ("sysu_mm01", {"direction": "thermal_to_visible"}, "--direction applies to regdb, not sysu_mm01"),
    ("prcc", {"boxes": "detected"}, "--boxes applies to cuhk03, not prcc"),
    ("ltcc", {"gallery_shot": "single"}, "--gallery-shot applies to prcc, not ltcc"),
    ("sysu_mm01", {"search_mode": "outdoor"}, "--search-mode 'outdoor': expected one of all, indoor"),
    ("sysu_mm01", {"colour": "red"}, "unknown benchmark option 'colour'"),
])
def test_options_that_do_not_fit_are_refused(tmp_path, name, option, match):
    with pytest.raises(ValueError, match=match):
        benchmarks.resolve_options(name, str(tmp_path), option)


def test_run_refuses_a_misplaced_option_before_any_model(tmp_path, capsys):
    root = make_prcc(tmp_path / "prcc")
    rc = run.main(["--model", "/no/such/model", "--dataset", f"prcc:{root}", "--search-mode", "indoor",
                   "--out", str(tmp_path / "out")])
    assert rc == 2 and "--search-mode applies to sysu_mm01" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_records_the_options_it_ran_with(tiny_model_dir, synth_sysu, tmp_path, capsys):
    out = tmp_path / "out"
    rc = run.main([str(a) for a in ["--model", tiny_model_dir, "--dataset", f"synthpeds:{synth_sysu}",
                                    "--search-mode", "indoor", "--trials", 2, "--prefilter", "color_histogram",
                                    "--top-k", 2, "--vis", 0, "--out", out]])
    assert rc == 0, capsys.readouterr().err
    res = json.loads(next(out.rglob("results.json")).read_text())
    assert res["options"] == {"search_mode": "indoor"} and res["trials_of"] == 10
    assert sorted(res["trials"]) == ["indoor-0", "indoor-1"]
    folders = (out / Path(tiny_model_dir).name).glob("trial_*")
    assert sorted(p.name for p in folders) == ["trial_indoor-0", "trial_indoor-1"]

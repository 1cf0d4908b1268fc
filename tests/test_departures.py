"""Every departure from the paper's evaluation is named under the tables (tables.departures), and
LTCC defaults to the setting the paper's Table 2 compares."""

import pytest

from chatreid.evaluation import tables
from chatreid.evaluation.benchmarks import check_protocol

BASE = {"label": "ChatReID", "dataset": "market1501", "protocol": "market", "num_queries": 3,
        "mean": {"mAP": 0.5, "rank1": 0.6, "mINP": 0.2}, "model": {"name_or_path": "runs/stage3/final"},
        "strategy": "best_choice", "prefilter": "runs/baseline/market1501", "top_k": None, "tau": 0.6, "window": 4,
        "best_choice": {"ranking": "confidence", "debias": "rotate"}, "trials": {"0": {}},
        "scoring": {"prompts": ["reid_standard"], "trained": True, "untrained": [], "stage": 3}}


def _notes(**change) -> str:
    return "\n".join(tables.departures([dict(BASE, **change)]))


def test_the_paperlike_run_still_names_its_departures():
    text = tables.render([BASE])
    assert "the paper's setup" not in text
    notes = _notes()
    for words in ("pages of 4 images", "P(Image k)", "cyclic rotations", "`runs/baseline/market1501`: a baseline "
                  "trained by this project", "tau is ours"):
        assert words in notes, words
    assert "merge sort" not in notes and "whole gallery" not in notes


@pytest.mark.parametrize("change, words", [
    (dict(best_choice={"ranking": "merge", "debias": "none"}), "merge sort of the pages' picks (ours"),
    (dict(best_choice=None), "ranking rule not recorded"),
    (dict(tau=None, prefilter="efficientnet_lite0"), "scores the whole gallery"),
    (dict(tau=None, top_k=20), "top k"),
    (dict(dataset="ltcc", protocol="cc"), "LTCC scored under `cc`; the paper's Table 2 compares its `general`"),
    (dict(dataset="prcc", protocol="general"), "PRCC scored under `general`"),
    (dict(tau_calibration=None), "tau was set by hand"),
    (dict(root="/data/m", tau_calibration={"validation_root": "/data/m", "target_recall": 0.9, "validation": "m"}),
     "calibrated on the evaluated folder itself"),
    (dict(mean=dict(BASE["mean"], below_tau=0.4, matches_below_tau=0.125)), "12.5% of true matches fell there"),
    (dict(dataset="regdb", protocol="regdb", trials={str(t): {} for t in range(1, 11)}),
     "10 regdb trials: what scored each trial not recorded: the trials may test on identities"),
    (dict(dataset="cuhk03", protocol="cuhk03_classic", trials={"0": {}, "1": {}}),
     "2 cuhk03_classic trials: what scored each trial not recorded"),
])
def test_each_departure_is_named(change, words):
    assert words in _notes(**change)


def test_paper_protocols_are_not_flagged():
    assert "scored under" not in _notes(dataset="ltcc", protocol="general")
    assert "scored under" not in _notes(dataset="prcc", protocol="cc")
    assert "one checkpoint" not in _notes(dataset="regdb", protocol="regdb", trials={"1": {}})


def test_ltcc_defaults_to_the_general_setting_of_table_2(tmp_path):
    assert check_protocol("ltcc", str(tmp_path), None) == "general"
    assert check_protocol("ltcc", str(tmp_path), "cc") == "cc"  # the other setting, one flag away
    assert check_protocol("prcc", str(tmp_path), None) == "cc"

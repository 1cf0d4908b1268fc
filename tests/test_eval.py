"""eval/run.py end to end on SynthPeds with the tiny model; chatreid.evaluation's benchmarks and tables."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "eval"))

import run  # noqa: E402  (the eval/run.py script)

from chatreid.evaluation import benchmarks, harness  # noqa: E402
from chatreid.evaluation import tables as table  # noqa: E402


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    from chatreid.data.synthpeds.layouts import generate

    base = tmp_path_factory.mktemp("worlds")
    out = {}
    for layout, ids in (("market", 4), ("ltcc", 4), ("sysu", 6), ("pedes", 30)):
        out[layout] = generate(layout, base / layout, ids, seed=2)["out"]
    return out


def _run(args, capsys=None):
    rc = run.main([str(a) for a in args])
    return rc, (capsys.readouterr() if capsys else None)


def _rows(folder):
    return harness.read_cache(Path(folder))


def test_market_end_to_end_metrics_pictures_and_resume(tiny_model_dir, worlds, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--model", tiny_model_dir, "--dataset", f"synthpeds:{worlds['market']}", "--prefilter", "color_histogram",
            "--top-k", 4, "--out", out, "--vis", 2, "--vis-k", 5]
    rc, cap = _run(args, capsys)
    assert rc == 0, cap.err
    label = Path(tiny_model_dir).name
    res = json.loads((out / label / "results.json").read_text())
    (trial,) = benchmarks.load_trials("synthpeds", worlds["market"], "market")
    assert res["protocol"] == "market" and res["num_queries"] == len(trial.queries) > 0
    rows = _rows(out / label / "trial_0")
    assert set(rows) == {q.qid for q in trial.queries}
    for r in rows.values():
        assert sorted(r["ranking"]) == list(range(len(trial.gallery)))
        assert r["num_scored"] == 4 and len(r["scores"]) == 4
    # the harness's figures are the metric of its own rankings
    from chatreid.metrics import evaluate_reid

    want = evaluate_reid(rankings=[rows[q.qid]["ranking"] for q in trial.queries], q_pids=[q.pid for q in trial.queries],
                         g_pids=[g.pid for g in trial.gallery], q_camids=[q.camid for q in trial.queries],
                         g_camids=[g.camid for g in trial.gallery], protocol="market")
    assert res["mean"]["mAP"] == pytest.approx(want["mAP"]) and res["mean"]["rank1"] == pytest.approx(want["rank1"])
    assert len(list((out / label / "ranked").glob("*.png"))) == 2
    assert (out / label / "cmc.png").stat().st_size > 0
    assert f"| {label} | market | pairwise | color_histogram | 4 |" in (out / "table.md").read_text()
    assert f"{100 * want['mAP']:.1f}" in cap.out

    # interrupted run: keep 2 finished queries and half of a third line, then resume
    shard = out / label / "trial_0" / "rankings.0.jsonl"
    lines = shard.read_text().splitlines()
    shard.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    rc, cap = _run(args, capsys)
    assert rc == 0, cap.err
    assert f"{len(trial.queries)} queries, 2 cached, {len(trial.queries) - 2} to run" in cap.out
    again = _rows(out / label / "trial_0")
    assert set(again) == set(rows)
    assert all(again[q]["ranking"] == rows[q]["ranking"] for q in rows)  # deterministic, same answers
    assert json.loads((out / label / "results.json").read_text())["mean"]["mAP"] == pytest.approx(res["mean"]["mAP"])


@pytest.mark.parametrize("bad, match", [
    (["--dataset", "synthpeds"], "NAME:PATH"),
    (["--dataset", "dukemtmc:/tmp"], "unknown benchmark"),
    (["--dataset", "market1501:/no/such/dir"], "no such folder"),
    (["--protocol", "cc"], "does not fit"),
    (["--protocol", "sysu"], "does not fit"),
])
def test_bad_input_fails_before_any_model(worlds, tmp_path, capsys, bad, match):
    args = ["--model", "/no/such/model", "--dataset", f"synthpeds:{worlds['market']}", "--out", tmp_path]
    for i in range(0, len(bad), 2):  # override or add
        if bad[i] in args:
            args[args.index(bad[i]) + 1] = bad[i + 1]
        else:
            args += bad[i:i + 2]
    rc, cap = _run(args, capsys)
    assert rc == 2 and match in cap.err
    assert not list(Path(tmp_path).iterdir())  # nothing written


def test_empty_gallery_is_refused(tmp_path):
    from chatreid.data import Record

    recs = [Record(path="/x/q.jpg", pid=1, camid=1, split="query", dataset="market1501")]
    with pytest.raises(ValueError, match="no gallery"):
        benchmarks._trial("0", recs, "/x", "market")


def test_missing_model_and_model_without_yes_token(tiny_model_dir, worlds, tmp_path, capsys, monkeypatch):
    base = ["--dataset", f"synthpeds:{worlds['market']}", "--prefilter", "none", "--out", tmp_path]
    rc, cap = _run(["--model", tmp_path / "absent"] + base, capsys)
    assert rc == 2 and "absent" in cap.err
    from chatreid import prompts

    monkeypatch.setattr(prompts, "YES", "Yesterdayish")
    rc, cap = _run(["--model", tiny_model_dir] + base, capsys)
    assert rc == 2 and "single token" in cap.err
    assert not list(Path(tmp_path).rglob("*.jsonl"))


def test_scoring_prompt_checked_against_what_the_last_stage_trained(tiny_model_dir, worlds, tmp_path, capsys):
    """A checkpoint records its last stage's tasks; scoring with a prompt outside them is said
    loudly and written into results.json and table.md, and a trained one is recorded as such."""
    import shutil

    ckpt = tmp_path / "stage1ish"
    shutil.copytree(tiny_model_dir, ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(dict(cfg, chatreid_tasks=["caption", "reid_standard"], chatreid_stage=3)))
    common = ["--model", ckpt, "--dataset", f"synthpeds:{worlds['market']}", "--prefilter", "color_histogram",
              "--top-k", 3, "--vis", 0]
    rc, cap = _run(common + ["--out", tmp_path / "pw"], capsys)
    assert rc == 0, cap.err
    assert "WARNING" in cap.err and "i2i_one_to_one" in cap.err and "stage 3" in cap.err
    res = json.loads((tmp_path / "pw" / "stage1ish" / "results.json").read_text())
    assert res["scoring"] == {"prompts": ["i2i_one_to_one"], "trained": False, "untrained": ["i2i_one_to_one"], "stage": 3}
    assert "(**no**)" in (tmp_path / "pw" / "table.md").read_text()
    rc, cap = _run(common + ["--strategy", "best_choice", "--out", tmp_path / "bc"], capsys)
    assert rc == 0 and "WARNING" not in cap.err
    res = json.loads((tmp_path / "bc" / "stage1ish" / "results.json").read_text())
    assert res["scoring"]["prompts"] == ["reid_standard"] and res["scoring"]["trained"] is True


def test_sysu_trials_are_ten_single_shot_galleries(worlds):
    trials = benchmarks.load_trials("synthpeds", worlds["sysu"], "sysu")
    assert [t.name for t in trials] == [str(i) for i in range(10)]
    for t in trials:
        keys = [(g.pid, g.camid) for g in t.gallery]
        assert len(keys) == len(set(keys))  # one image per identity and camera
        assert all(q.camid in (3, 6) for q in t.queries)
    assert len({tuple(g.path for g in t.gallery) for t in trials}) > 1  # the draws differ
    assert len(benchmarks.load_trials("synthpeds", worlds["sysu"], "sysu", trials=3)) == 3
    with pytest.raises(ValueError, match="one fixed split"):
        benchmarks.load_trials("synthpeds", worlds["market"], "market", trials=2)


def test_text_to_image_queries_are_captions(worlds):
    (trial,) = benchmarks.load_trials("synthpeds", worlds["pedes"], "t2i")
    assert trial.queries and all(q.text and q.path is None for q in trial.queries)
    assert sum(len(g.captions) for g in trial.gallery) == len(trial.queries)
    assert len({q.pid for q in trial.queries}) > 1


def test_tables_layout_and_stage_ablation():
    def res(label, dataset, m, r, protocol="market"):
        return {"label": label, "dataset": dataset, "protocol": protocol, "strategy": "pairwise", "prefilter": "none",
                "top_k": None, "num_queries": 3, "mean": {"mAP": m, "rank1": r, "mINP": m / 2}, "trials": {"0": {}},
                "model": {"name_or_path": f"org/{label}"}}

    results = [res("Stage 3", "market1501", 0.5, 0.6), res("Stage 3", "ltcc", 0.2, 0.3, "cc"),
               res("ChatReID", "market1501", 0.9, 0.95), res("ChatReID", "ltcc", 0.4, 0.5, "cc")]
    text = table.render(results)
    assert "| Stage 3 | 50.0 | 60.0 |" in text  # Table 1: Market1501 mAP, Rank-1
    assert "| ChatReID | 40.0 | 50.0 |" in text  # Table 2: LTCC
    assert "Table 4" in text and "| ChatReID | 90.0 | 40.0 | 65.0 |" in text  # mean of the two mAPs
    assert "Table 3" not in text  # no VI runs, no VI table
    assert "Table 4" not in table.render(results[:2])  # one checkpoint: no ablation
    # Table 4 follows Table 2's order (LTCC, PRCC) and says so
    with_prcc = results + [res("ChatReID", "prcc", 0.3, 0.3, "cc"), res("Stage 3", "prcc", 0.1, 0.1, "cc")]
    t4 = table.ablation_table(with_prcc)
    assert t4.index("LTCC |") < t4.index("PRCC |") and "as in Table 2" in t4


def test_tables_say_how_they_were_made():
    base = {"dataset": "sysu_mm01", "protocol": "sysu", "num_queries": 3, "mean": {"mAP": 0.5, "rank1": 0.6, "mINP": 0.2},
            "model": {"name_or_path": "org/chatreid-stage3"}, "tau": None}
    paperlike = dict(base, label="A", strategy="best_choice", prefilter="runs/baseline", top_k=None, tau=0.6, window=4,
                     trials={str(t): {} for t in range(10)},
                     scoring={"prompts": ["reid_vi"], "trained": True, "untrained": [], "stage": 3})
    text = table.render([paperlike])
    row = next(line for line in text.splitlines() if line.startswith("| A | SYSU-MM01"))
    for cell in ("`org/chatreid-stage3`", "best_choice", "`reid_vi` (yes)", "`runs/baseline`", "tau 0.6", "| 4 |",
                 "10 of 10", "sysu"):
        assert cell in row, cell
    assert "the paper's setup" not in text  # best-choice, a trained pre-filter and tau still depart (test_departures.py)
    # every departure is named
    off = dict(base, label="B", strategy="pairwise", prefilter="efficientnet_lite0", top_k=50, window=None,
               trials={"0": {}}, scoring={"prompts": ["i2i_one_to_one"], "trained": False, "untrained": ["i2i_one_to_one"]})
    notes = "\n".join(table.departures([off]))
    for words in ("P(Yes)", "not trained for Re-ID", "top k", "sysu (1 of 10)", "B: scored with a prompt"):
        assert words in notes, words
    # the trials and options eval/run.py recorded: CUHK03's classic layout averages over 20 splits
    classic = dict(off, label="C", dataset="cuhk03", protocol="cuhk03_classic", trials={"0": {}, "1": {}},
                   options={"cuhk03_layout": "classic", "boxes": "detected"}, trials_of=20)
    assert "cuhk03_classic (2 of 20)" in "\n".join(table.departures([classic]))
    assert "boxes=detected, cuhk03_layout=classic" in table.provenance_table([classic])
    assert "(**no**)" in table.render([off])


@pytest.mark.slow
@pytest.mark.parametrize("layout, extra", [
    ("ltcc", ["--protocol", "cc", "--strategy", "best_choice", "--top-k", 5]),
    ("sysu", ["--trials", 2, "--top-k", 4]),
    ("pedes", ["--strategy", "pairwise"]),
])
def test_other_protocols_end_to_end(tiny_model_dir, worlds, tmp_path, capsys, layout, extra):
    rc, cap = _run(["--model", tiny_model_dir, "--dataset", f"synthpeds:{worlds[layout]}", "--prefilter",
                    "efficientnet_lite0", "--out", tmp_path, "--vis", 1] + extra, capsys)
    assert rc == 0, cap.err
    res = json.loads(next(Path(tmp_path).rglob("results.json")).read_text())
    assert len(res["trials"]) == (2 if layout == "sysu" else 1)
    assert 0.0 <= res["mean"]["mAP"] <= 1.0 and len(res["mean"]["cmc"]) == 20
    assert list(Path(tmp_path).rglob("ranked/*.png")) and (Path(tmp_path) / "table.md").exists()


@pytest.mark.slow
def test_accelerate_two_processes_match_one(tiny_model_dir, worlds, tmp_path):
    common = ["--model", str(tiny_model_dir), "--dataset", f"synthpeds:{worlds['market']}", "--prefilter",
              "color_histogram", "--top-k", "3", "--vis", "0"]
    one = subprocess.run([sys.executable, str(REPO / "eval/run.py"), *common, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    # --multi_gpu is accelerate's torchrun launcher; without CUDA the processes form a CPU group
    two = subprocess.run(["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "eval/run.py"),
                          *common, "--out", str(tmp_path / "two")], capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    label = Path(tiny_model_dir).name
    shards = sorted((tmp_path / "two" / label / "trial_0").glob("rankings.*.jsonl"))
    assert [s.name for s in shards] == ["rankings.0.jsonl", "rankings.1.jsonl"]
    assert all(s.read_text().strip() for s in shards)  # both processes did work
    a = _rows(tmp_path / "one" / label / "trial_0")
    b = _rows(tmp_path / "two" / label / "trial_0")
    assert {k: v["ranking"] for k, v in a.items()} == {k: v["ranking"] for k, v in b.items()}
    for k in a:
        np.testing.assert_allclose(a[k]["scores"], b[k]["scores"], atol=1e-5)

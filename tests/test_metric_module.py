"""The `chatreid_metric` evaluate module: loads offline from the repository root, streams with
add_batch, returns what chatreid.metrics.evaluate_reid returns; its Space app scores .npz runs."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from chatreid.metrics import evaluate_reid

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def metric():
    import evaluate

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # evaluate resolves "chatreid_metric" relative to the current directory
        yield evaluate.load("chatreid_metric")


def run(seed=0, nq=20, ng=45):
    rng = np.random.default_rng(seed)
    return dict(distmat=rng.random((nq, ng)).astype(np.float32), q_pids=rng.integers(0, 6, nq),
                g_pids=rng.integers(0, 6, ng), q_camids=rng.integers(1, 4, nq), g_camids=rng.integers(1, 4, ng))


def test_compute_equals_evaluate_reid(metric):
    r = run()
    got = metric.compute(**r, ranks=[1, 5])
    assert got == evaluate_reid(**r, ranks=[1, 5])
    assert set(got) == {"rank1", "rank5", "cmc", "mAP", "mINP", "num_valid_queries"}


def test_add_batch_streaming_equals_one_call(metric):
    r = run(seed=1)
    for start in range(0, 20, 6):
        sl = slice(start, start + 6)
        metric.add_batch(distmat=r["distmat"][sl], q_pids=r["q_pids"][sl], q_camids=r["q_camids"][sl])
    got = metric.compute(g_pids=r["g_pids"], g_camids=r["g_camids"], protocol="general")
    assert got == evaluate_reid(**r, protocol="general")


def test_rankings_and_clothes(metric):
    r = run(seed=2, nq=8, ng=30)
    rng = np.random.default_rng(2)
    q_clothes, g_clothes = rng.integers(0, 3, 8), rng.integers(0, 3, 30)
    partial = [list(np.argsort(row, kind="stable")[:5]) for row in r["distmat"]]
    expected = evaluate_reid(**r, q_clothes=q_clothes, g_clothes=g_clothes, protocol="cc")
    # ints and strings as clothes ids give the same result; the rest of each ranking follows distmat
    got = metric.compute(**r, rankings=partial, q_clothes=q_clothes, g_clothes=g_clothes, protocol="cc")
    assert got == expected
    got = metric.compute(**r, rankings=partial, q_clothes=[str(c) for c in q_clothes],
                         g_clothes=[str(c) for c in g_clothes], protocol="cc")
    assert got == expected


def test_t2i_without_cameras(metric):
    sims = [[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]]
    got = metric.compute(distmat=sims, q_pids=[0, 1], g_pids=[0, 1, 1], protocol="t2i", similarity=True)
    assert got["rank1"] == 1.0 and got["mAP"] == 1.0


def test_bad_input_is_a_clear_error(metric):
    with pytest.raises(ValueError, match="distmat rows or rankings"):
        metric.add_batch(q_pids=[1, 2])
    with pytest.raises(ValueError, match="protocol"):
        metric.compute(distmat=[[0.1]], q_pids=[1], g_pids=[1], protocol="duke")
    with pytest.raises(ValueError, match="q_camids is missing for query 1"):
        metric.add(distmat=[0.1, 0.2], q_pids=1, q_camids=1)
        metric.add(distmat=[0.1, 0.2], q_pids=2)
        metric.compute(g_pids=[1, 2], g_camids=[2, 2])


def test_space_app_scores_an_npz(tmp_path):
    spec = importlib.util.spec_from_file_location("metric_app", ROOT / "chatreid_metric" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    r = run(seed=3)
    path = tmp_path / "run.npz"
    np.savez(path, **r)
    assert app.score_npz(str(path), "market", "1, 5") == evaluate_reid(**r, ranks=[1, 5])
    np.savez(path, rankings=np.array([[1, 0], [1, -1]]), q_pids=[1, 2], g_pids=[1, 2])
    assert app.score_npz(str(path), "t2i", "1")["mAP"] == pytest.approx(0.75)
    np.savez(path, dist=np.zeros((1, 1)), q_pids=[1], g_pids=[1])
    with pytest.raises(ValueError, match="unexpected arrays"):
        app.score_npz(str(path))
    assert not app.card().lstrip().startswith("title:")  # YAML front matter is not shown

"""chatreid.metrics.evaluate_reid: hand-computed cases, every protocol against a reference loop
written the way the public evaluation code is (with a stable sort), rankings input, ties, errors."""

import subprocess
import sys

import numpy as np
import pytest

import chatreid.metrics as metrics
from chatreid.metrics import evaluate_reid


# --- a reference: the classic per-query loop of torchreid / CAL / AGW, written plainly ----------


def reference(distmat, q_pids, g_pids, q_cams=None, g_cams=None, q_clo=None, g_clo=None, mode="market",
              max_rank=20, dedup=False):
    indices = np.argsort(distmat, axis=1, kind="stable")
    cmcs, aps, inps = [], [], []
    for i, order in enumerate(indices):
        same = g_pids[order] == q_pids[i]
        if mode in ("market", "general"):
            remove = same & (g_cams[order] == q_cams[i])
        elif mode == "cc":
            remove = same & ((g_cams[order] == q_cams[i]) | (g_clo[order] == q_clo[i]))
        elif mode == "sc":
            remove = same & ((g_cams[order] == q_cams[i]) | (g_clo[order] != q_clo[i]))
        elif mode == "sysu":
            remove = (q_cams[i] == 3) & (g_cams[order] == 2)
        else:
            remove = np.zeros(len(order), bool)
        raw = same[~remove].astype(int)
        if not raw.any():
            continue
        if dedup:  # eval_sysu: each identity once, at its first appearance
            kept_pids = g_pids[order][~remove]
            first = np.sort(np.unique(kept_pids, return_index=True)[1])
            hit = (kept_pids[first] == q_pids[i]).cumsum()
        else:
            hit = np.minimum(raw.cumsum(), 1)
        cmc = np.ones(max_rank)
        cmc[: min(max_rank, len(hit))] = hit[:max_rank]
        cmcs.append(cmc)
        cum = raw.cumsum()
        aps.append((cum / np.arange(1, len(raw) + 1) * raw).sum() / raw.sum())
        last = np.flatnonzero(raw)[-1]
        inps.append(cum[last] / (last + 1))
    if not aps:
        return None, None, None, 0
    return np.mean(cmcs, 0), float(np.mean(aps)), float(np.mean(inps)), len(aps)


def random_run(rng, nq, ng, ties=False):
    d = rng.random((nq, ng)).astype(np.float32)
    if ties:
        d = np.round(d * 4).astype(np.float32)  # many exact ties, matches and non-matches alike
    return dict(
        distmat=d,
        q_pids=rng.integers(0, 8, nq), g_pids=rng.integers(0, 8, ng),
        q_cams=rng.integers(1, 4, nq), g_cams=rng.integers(1, 4, ng),
        q_clo=rng.integers(0, 3, nq), g_clo=rng.integers(0, 3, ng),
    )


def call(run, protocol, **kw):
    return evaluate_reid(run["distmat"], run["q_pids"], run["g_pids"], run["q_cams"], run["g_cams"],
                         run["q_clo"], run["g_clo"], protocol=protocol, **kw)


def assert_matches_reference(result, ref):
    cmc, m_ap, m_inp, n = ref
    assert result["num_valid_queries"] == n
    np.testing.assert_allclose(result["cmc"], cmc, atol=1e-12)
    assert result["mAP"] == pytest.approx(m_ap, abs=1e-12)
    assert result["mINP"] == pytest.approx(m_inp, abs=1e-12)
    for k in (1, 5, 10, 20):
        assert result[f"rank{k}"] == pytest.approx(cmc[k - 1], abs=1e-12)


# --- hand-computed cases ---------------------------------------------------------------------------


def test_perfect_ranking_scores_one_everywhere():
    g_pids = np.array([0, 0, 1, 1, 2, 2])
    q_pids = np.array([0, 1, 2])
    # each query is closest to its own identity's images
    d = np.where(q_pids[:, None] == g_pids[None, :], 0.1, 0.9)
    r = evaluate_reid(d, q_pids, g_pids, np.zeros(3, int), np.ones(6, int))
    assert r["rank1"] == r["rank5"] == r["mAP"] == r["mINP"] == 1.0
    assert r["cmc"] == [1.0] * 20 and r["num_valid_queries"] == 3


def test_known_ranking_gives_known_values():
    # ranking by distance: pids 2, 1, 3, 1 -> true matches at 1-based places 2 and 4
    r = evaluate_reid([[0.1, 0.2, 0.3, 0.4]], [1], [2, 1, 3, 1], [0], [1, 1, 1, 1], ranks=(1, 2, 3))
    assert r["rank1"] == 0.0 and r["rank2"] == 1.0 and r["rank3"] == 1.0
    assert r["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert r["mINP"] == pytest.approx(2 / 4)
    assert r["cmc"] == [0.0, 1.0, 1.0]


def test_market_removes_same_identity_same_camera_only():
    # item 0 (same pid, same camera) is junk; item 2 (same pid, other camera) is the match
    r = evaluate_reid([[0.1, 0.2, 0.3]], [5], [5, 7, 5], [1], [1, 2, 2], ranks=(1, 2))
    assert r["rank1"] == 0.0 and r["rank2"] == 1.0 and r["mAP"] == pytest.approx(0.5)
    # a different-identity item from the query's camera stays in the ranking
    r = evaluate_reid([[0.1, 0.2]], [5], [7, 5], [1], [1, 2], ranks=(1,))
    assert r["rank1"] == 0.0


def test_ties_are_broken_by_gallery_index():
    # all distances equal: the order is the gallery order, whatever the platform's sort does
    r = evaluate_reid([[0.5, 0.5, 0.5]], [1], [2, 1, 1], [0], [1, 1, 1], ranks=(1, 2))
    assert r["rank1"] == 0.0 and r["rank2"] == 1.0
    assert r["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    r = evaluate_reid([[0.5, 0.5, 0.5]], [1], [1, 2, 1], [0], [1, 1, 1], ranks=(1,))
    assert r["rank1"] == 1.0 and r["mAP"] == pytest.approx((1 + 2 / 3) / 2)


def test_gallery_shorter_than_largest_rank():
    r = evaluate_reid([[0.3, 0.1]], [1], [1, 2], [0], [1, 1])  # ranks up to 20, gallery of 2
    assert len(r["cmc"]) == 20 and r["rank1"] == 0.0 and r["rank5"] == r["rank20"] == 1.0
    r = evaluate_reid([[0.3]], [1], [1], [0], [1], ranks=(1, 5))
    assert r["rank1"] == r["rank5"] == r["mAP"] == 1.0


def test_queries_without_a_valid_match_are_left_out():
    # query 1's only same-identity image is from its own camera: invalid
    r = evaluate_reid([[0.1, 0.2], [0.1, 0.2]], [1, 2], [1, 2], [0, 3], [1, 3], ranks=(1,))
    assert r["num_valid_queries"] == 1 and r["rank1"] == 1.0 and r["mAP"] == 1.0


def test_similarity_equals_negated_distance():
    run = random_run(np.random.default_rng(3), 12, 40)
    a = call(run, "market")
    b = evaluate_reid(-run["distmat"], run["q_pids"], run["g_pids"], run["q_cams"], run["g_cams"],
                      similarity=True)
    assert a == b


# --- every protocol against the reference loop ----------------------------------------------------


@pytest.mark.parametrize("protocol", ["market", "general", "cc", "sc", "regdb", "t2i"])
@pytest.mark.parametrize("ties", [False, True])
def test_protocols_match_reference(protocol, ties, monkeypatch):
    rng = np.random.default_rng(7)
    for trial in range(12):
        # one-row chunks as well as whole-matrix ones: the sort buffer is reused across chunks
        monkeypatch.setattr(metrics, "CHUNK_BYTES", [64 * 2**20, 1][trial % 2])
        run = random_run(rng, int(rng.integers(1, 25)), int(rng.integers(1, 120)), ties)
        ref = reference(run["distmat"], run["q_pids"], run["g_pids"], run["q_cams"], run["g_cams"],
                        run["q_clo"], run["g_clo"], mode=protocol)
        if ref[3] == 0:
            with pytest.raises(ValueError, match="no query has a true match"):
                call(run, protocol)
            continue
        assert_matches_reference(call(run, protocol), ref)


@pytest.mark.parametrize("dedup", [True, False])
@pytest.mark.parametrize("ties", [False, True])
def test_sysu_matches_eval_sysu(dedup, ties):
    rng = np.random.default_rng(11)
    for _ in range(12):
        nq, ng = int(rng.integers(1, 25)), int(rng.integers(1, 120))
        run = random_run(rng, nq, ng, ties)
        run["q_cams"], run["g_cams"] = rng.choice([3, 6], nq), rng.choice([1, 2, 4, 5], ng)
        ref = reference(run["distmat"], run["q_pids"], run["g_pids"], run["q_cams"], run["g_cams"],
                        mode="sysu", dedup=dedup)
        if ref[3] == 0:
            continue
        r = evaluate_reid(run["distmat"], run["q_pids"], run["g_pids"], run["q_cams"], run["g_cams"],
                          protocol="sysu", dedup_cmc=dedup)
        assert_matches_reference(r, ref)


def test_sysu_camera_3_never_matches_camera_2():
    # query from IR camera 3; its identity's camera-2 image is removed, camera-1 image kept
    r = evaluate_reid([[0.1, 0.2, 0.3]], [1], [1, 2, 1], [3], [2, 1, 1], protocol="sysu", ranks=(1, 2))
    assert r["rank1"] == 0.0 and r["rank2"] == 1.0
    # a camera-6 query keeps camera 2
    r = evaluate_reid([[0.1, 0.2, 0.3]], [1], [1, 2, 1], [6], [2, 1, 1], protocol="sysu", ranks=(1,))
    assert r["rank1"] == 1.0


def test_sysu_dedup_cmc_counts_each_identity_once():
    # ranking pids: 2, 2, 2, 1 -> standard rank of the match 4, deduplicated rank 2
    args = ([[0.1, 0.2, 0.3, 0.4]], [1], [2, 2, 2, 1], [3], [1, 1, 1, 1])
    dedup = evaluate_reid(*args, protocol="sysu", ranks=(1, 2, 3))
    plain = evaluate_reid(*args, protocol="sysu", ranks=(1, 2, 3), dedup_cmc=False)
    assert dedup["cmc"] == [0.0, 1.0, 1.0] and plain["cmc"] == [0.0, 0.0, 0.0]
    assert dedup["mAP"] == plain["mAP"] == pytest.approx(0.25)


def test_sysu_checks_camera_numbering_and_search_mode():
    with pytest.raises(ValueError, match="q_camids"):
        evaluate_reid([[0.1]], [1], [1], [2], [1], protocol="sysu")  # 0-based IR camera 2
    with pytest.raises(ValueError, match="g_camids.*indoor"):
        evaluate_reid([[0.1, 0.2]], [1], [1, 1], [3], [1, 4], protocol="sysu", search_mode="indoor")
    r = evaluate_reid([[0.1, 0.2]], [1], [1, 1], [3], [1, 4], protocol="sysu", search_mode="all")
    assert r["rank1"] == 1.0


def test_cloth_changing_modes_by_hand():
    # query: pid 1, camera 1, clothes "a". Gallery: same pid in (cam 2, "a"), (cam 2, "b"), (cam 1, "b")
    d, q, g = [[0.1, 0.2, 0.3, 0.4]], [1], [1, 1, 1, 9]
    qc, gc = [1], [2, 2, 1, 2]
    qclo, gclo = ["a"], ["a", "b", "b", "z"]
    cc = evaluate_reid(d, q, g, qc, gc, qclo, gclo, protocol="cc", ranks=(1,))
    sc = evaluate_reid(d, q, g, qc, gc, qclo, gclo, protocol="sc", ranks=(1,))
    general = evaluate_reid(d, q, g, qc, gc, qclo, gclo, protocol="general", ranks=(1,))
    # cc keeps only item 1 (other camera, other clothes) and item 3 -> match first
    assert cc["rank1"] == 1.0 and cc["mAP"] == 1.0
    # sc keeps only item 0 of pid 1 -> match first; general keeps items 0 and 1
    assert sc["rank1"] == 1.0 and sc["mAP"] == 1.0
    assert general["mAP"] == 1.0 and general["mINP"] == 1.0
    # the cloth-changing query whose only other-clothes image shares its camera is invalid
    with pytest.raises(ValueError, match="no query"):
        evaluate_reid([[0.1]], [1], [1], [1], [1], ["a"], ["b"], protocol="cc")


def test_regdb_and_t2i_do_not_filter():
    # same identity, same camera: removed by market, kept by regdb and t2i
    args = ([[0.1, 0.2]], [1], [1, 2])
    for protocol in ("regdb", "t2i"):
        assert evaluate_reid(*args, protocol=protocol, ranks=(1,))["rank1"] == 1.0
    with pytest.raises(ValueError, match="no query"):
        evaluate_reid(*args, [1], [1, 1], ranks=(1,), protocol="market")


def test_t2i_with_similarity_like_irra():
    sims = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]])
    r = evaluate_reid(sims, [0, 1], [0, 1, 1], protocol="t2i", similarity=True, ranks=(1, 2))
    # query 0: match first; query 1: matches at places 1 and 2
    assert r["rank1"] == 1.0 and r["mAP"] == 1.0 and r["mINP"] == 1.0


# --- the fast path (sorted rows, binary search, ties counted) against the plain loop -----------------


PLAIN_PROTOCOLS = ["market", "general", "cc", "sc", "sysu", "regdb", "t2i"]


def tied_run(rng, nq, ng, dtype, levels):
    """Scores drawn from a few levels, so matches, non-matches and junk tie all the time; -0.0 and
    0.0 both occur (equal as numbers, so tied)."""
    d = rng.integers(0, levels, (nq, ng)).astype(dtype) - levels // 2
    if np.issubdtype(dtype, np.floating):
        d[d == 0] = np.where(rng.random(np.count_nonzero(d == 0)) < 0.5, -0.0, 0.0)
    run = random_run(rng, nq, ng)
    run["distmat"] = d
    return run


@pytest.mark.parametrize("protocol", PLAIN_PROTOCOLS)
def test_fast_path_equals_the_plain_loop_with_ties(protocol, monkeypatch):
    rng = np.random.default_rng(101)
    checked = 0
    for trial in range(24):
        monkeypatch.setattr(metrics, "CHUNK_BYTES", [64 * 2**20, 1, 16 * 40][trial % 3])
        nq, ng = int(rng.integers(1, 30)), int(rng.integers(1, 150))
        dtype = [np.float32, np.float64, np.int64][trial % 3]
        run = tied_run(rng, nq, ng, dtype, levels=int(rng.integers(1, 6)))
        if protocol == "sysu":
            run["q_cams"], run["g_cams"] = rng.choice([3, 6], nq), rng.choice([1, 2, 4, 5], ng)
        dedup = protocol == "sysu" and trial % 2 == 0
        ref = reference(run["distmat"], run["q_pids"], run["g_pids"], run["q_cams"], run["g_cams"],
                        run["q_clo"], run["g_clo"], mode=protocol, dedup=dedup)
        if ref[3] == 0:
            continue
        kw = {"dedup_cmc": dedup} if protocol == "sysu" else {}
        assert_matches_reference(call(run, protocol, **kw), ref)
        # descending similarity is the same ranking as ascending distance
        sim = evaluate_reid(-run["distmat"], run["q_pids"], run["g_pids"], run["q_cams"], run["g_cams"],
                            run["q_clo"], run["g_clo"], protocol=protocol, similarity=True, **kw)
        assert_matches_reference(sim, ref)
        checked += 1
    assert checked >= 12


@pytest.mark.parametrize("protocol", PLAIN_PROTOCOLS + ["cuhk03_classic"])
def test_fast_path_equals_the_per_query_path(protocol):
    """The rankings path sorts each query's row on its own; given the stable order of the matrix it
    must score exactly what the fast path scores (cuhk03_classic's sampled CMC included)."""
    rng = np.random.default_rng(202)
    for _ in range(8):
        nq, ng = int(rng.integers(1, 20)), int(rng.integers(2, 200))
        run = tied_run(rng, nq, ng, np.float32, levels=3)
        if protocol == "sysu":
            run["q_cams"], run["g_cams"] = rng.choice([3, 6], nq), rng.choice([1, 2, 4, 5], ng)
        try:
            expected = call(run, protocol)
        except ValueError:
            continue
        order = np.argsort(run["distmat"], axis=1, kind="stable")
        got = evaluate_reid(None, run["q_pids"], run["g_pids"], run["q_cams"], run["g_cams"], run["q_clo"],
                            run["g_clo"], protocol=protocol, rankings=order)
        assert got["cmc"] == expected["cmc"] and got["num_valid_queries"] == expected["num_valid_queries"]
        assert got["mAP"] == pytest.approx(expected["mAP"], abs=1e-12)
        assert got["mINP"] == pytest.approx(expected["mINP"], abs=1e-12)


def test_a_match_tied_with_non_matches_and_junk_by_hand():
    # all four at 0.5: gallery order pid 2, pid 1 (same camera: junk), pid 1 (match), pid 2.
    # Kept ranking: pid 2, match, pid 2 -> the match is second; the junk item ahead of it is not counted.
    r = evaluate_reid([[0.5, 0.5, 0.5, 0.5]], [1], [2, 1, 1, 2], [1], [3, 1, 2, 3], ranks=(1, 2))
    assert r["cmc"] == [0.0, 1.0] and r["mAP"] == pytest.approx(0.5)
    # one strictly closer non-match, then a tie of two matches and a non-match between them
    r = evaluate_reid([[0.5, 0.5, 0.1, 0.5]], [1], [1, 2, 3, 1], [1], [2, 2, 2, 2], ranks=(1, 2, 3))
    assert r["cmc"] == [0.0, 1.0, 1.0] and r["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert r["mINP"] == pytest.approx(2 / 4)


# --- cuhk03_classic ----------------------------------------------------------------------------------


def test_cuhk03_classic_with_one_image_per_identity_equals_market():
    rng = np.random.default_rng(5)
    g_pids = np.arange(30)
    q_pids = rng.integers(0, 30, 10)
    d = rng.random((10, 30))
    kw = dict(q_camids=np.zeros(10, int), g_camids=np.ones(30, int))
    assert evaluate_reid(d, q_pids, g_pids, protocol="cuhk03_classic", **kw) == evaluate_reid(d, q_pids, g_pids, **kw)


def test_cuhk03_classic_samples_one_image_per_identity():
    # ranking: pid 1 (match), pid 2, pid 1 (match). Drawing the first pid-1 image (p=1/2) gives rank 1,
    # the second gives rank 2 (pid 2 comes before it).
    args = ([[0.1, 0.2, 0.3]], [1], [1, 2, 1], [0], [1, 1, 1])
    r = evaluate_reid(*args, protocol="cuhk03_classic", ranks=(1, 2), num_repeats=4000, seed=1)
    assert r["rank1"] == pytest.approx(0.5, abs=0.04) and r["rank2"] == 1.0
    assert r["mAP"] == pytest.approx((1 + 2 / 3) / 2)  # the whole kept ranking, as torchreid
    again = evaluate_reid(*args, protocol="cuhk03_classic", ranks=(1, 2), num_repeats=4000, seed=1)
    assert again == r  # seeded
    few = [evaluate_reid(*args, protocol="cuhk03_classic", ranks=(1,), num_repeats=3, seed=s)["rank1"]
           for s in range(8)]
    assert len(set(few)) > 1  # the seed really drives the draws


# --- rankings input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["market", "cc", "sysu", "cuhk03_classic"])
def test_rankings_equal_the_distance_matrix_that_induces_them(protocol):
    rng = np.random.default_rng(13)
    for _ in range(6):
        nq, ng = int(rng.integers(1, 15)), int(rng.integers(2, 60))
        run = random_run(rng, nq, ng, ties=True)
        if protocol == "sysu":
            run["q_cams"], run["g_cams"] = rng.choice([3, 6], nq), rng.choice([1, 2, 4, 5], ng)
        full = np.argsort(run["distmat"], axis=1, kind="stable")
        try:
            expected = call(run, protocol)
        except ValueError:
            continue
        cut = int(rng.integers(0, ng))
        # full rankings alone; partial rankings with the matrix ordering the rest
        assert evaluate_reid(None, run["q_pids"], run["g_pids"], run["q_cams"], run["g_cams"], run["q_clo"],
                             run["g_clo"], protocol=protocol, rankings=full) == expected
        assert evaluate_reid(run["distmat"], run["q_pids"], run["g_pids"], run["q_cams"], run["g_cams"],
                             run["q_clo"], run["g_clo"], protocol=protocol,
                             rankings=[row[:cut] for row in full]) == expected


def test_partial_ranking_without_fallback_uses_gallery_order():
    # ranking [2]; the rest (0, 1) follows in index order -> pids 3, 1, 2; match at place 2
    r = evaluate_reid(None, [1], [1, 2, 3], [0], [1, 1, 1], rankings=[[2]], ranks=(1, 2))
    assert r["rank1"] == 0.0 and r["rank2"] == 1.0
    # ragged rankings for several queries
    r = evaluate_reid(None, [1, 2], [1, 2, 3], [0, 0], [1, 1, 1], rankings=[[0], [2, 1]], ranks=(1,))
    assert r["rank1"] == 0.5


def test_partial_ranking_with_similarity_fallback():
    # ranking [2]; the rest by descending similarity: 1 (0.9) before 0 (0.1)
    r = evaluate_reid([[0.1, 0.9, 0.0]], [1], [1, 2, 3], [0], [1, 1, 1], rankings=[[2]], similarity=True,
                      ranks=(1, 2, 3))
    assert r["cmc"] == [0.0, 0.0, 1.0]


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(distmat=[[0.1, 0.2]], q_pids=[1], g_pids=[1, 2, 3]), "distmat"),
        (dict(distmat=[0.1, 0.2], q_pids=[1], g_pids=[1, 2]), "distmat"),
        (dict(distmat=[[np.nan, 0.2]], q_pids=[1], g_pids=[1, 2], protocol="regdb"), "NaN or infinite.*row 0, column 0"),
        (dict(distmat=[[0.1, np.inf]], q_pids=[1], g_pids=[1, 2], protocol="regdb"), "column 1"),
        (dict(distmat=np.zeros((1, 0)), q_pids=[1], g_pids=[]), "gallery is empty"),
        (dict(distmat=[[0.1]], q_pids=[1], g_pids=[2], protocol="t2i"), "no query has a true match"),
        (dict(distmat=[[0.1]], q_pids=[1], g_pids=[1], protocol="duke"), "protocol"),
        (dict(distmat=[[0.1]], q_pids=[1], g_pids=[1]), "q_camids is required"),
        (dict(distmat=[[0.1]], q_pids=[1], g_pids=[1], q_camids=[0], g_camids=[1], protocol="cc"),
         "q_clothes is required"),
        (dict(distmat=[[0.1]], q_pids=[1], g_pids=[1], q_camids=[0], g_camids=[1, 2]), "g_camids has 1|g_camids has 2"),
        (dict(distmat=[[0.1]], q_pids=[1], g_pids=["1"], protocol="regdb"), "q_pids.*g_pids"),
        (dict(distmat=[[0.1]], q_pids=[1], g_pids=[1], protocol="regdb", ranks=(0,)), "ranks"),
        (dict(distmat=[[0.1]], q_pids=[1], g_pids=[1], protocol="regdb", seed=3), "unknown option 'seed'"),
        (dict(distmat=[[0.1]], q_pids=[1], g_pids=[1], protocol="sysu", q_camids=[3], g_camids=[1],
              search_mode="outdoor"), "search_mode"),
        (dict(q_pids=[1], g_pids=[1], protocol="regdb"), "distmat is required"),
        (dict(q_pids=[1], g_pids=[1, 2], protocol="regdb", rankings=[[0, 0]]), r"rankings\[0\].*more than once"),
        (dict(q_pids=[1], g_pids=[1, 2], protocol="regdb", rankings=[[5]]), r"rankings\[0\].*outside"),
        (dict(q_pids=[1, 2], g_pids=[1, 2], protocol="regdb", rankings=[[0]]), "rankings has 1 rows"),
        # a bad ranking of a query without any match is still an error
        (dict(q_pids=[1, 3], g_pids=[1, 2], protocol="regdb", rankings=[[0], [7]]), r"rankings\[1\].*outside"),
        (dict(distmat=[["a"]], q_pids=[1], g_pids=[1], protocol="regdb"), "distmat must hold numbers"),
    ],
)
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        evaluate_reid(**kwargs)


def test_metric_never_imports_torch():
    code = "import sys, chatreid.metrics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_market_junk_boxes_never_count_but_distractors_do():
    """Market-1501's evaluation drops identity -1 (junk) for every query; identity 0 (distractors)
    stays in the ranking as a wrong match."""
    g_pids, g_cams = [-1, 0, 7, 8], [1, 1, 2, 2]
    dist = [[0.1, 0.5, 0.3, 0.9]]  # junk first, then the match, then the distractor
    res = evaluate_reid(np.array(dist), q_pids=[7], g_pids=g_pids, q_camids=[1], g_camids=g_cams, protocol="market")
    assert res["rank1"] == 1.0 and res["mAP"] == 1.0
    dist = [[0.1, 0.2, 0.3, 0.9]]  # the distractor now outranks the match
    res = evaluate_reid(np.array(dist), q_pids=[7], g_pids=g_pids, q_camids=[1], g_camids=g_cams, protocol="market")
    assert res["rank1"] == 0.0 and res["mAP"] == pytest.approx(0.5)
    # other protocols know nothing of Market's junk label: -1 is just another identity there
    res = evaluate_reid(np.array([[0.1, 0.5, 0.3, 0.9]]), q_pids=[7], g_pids=g_pids, q_camids=[1], g_camids=g_cams,
                        protocol="general")
    assert res["rank1"] == 0.0
    # per-query rankings follow the same rule
    res = evaluate_reid(rankings=[[0, 2, 1, 3]], q_pids=[7], g_pids=g_pids, q_camids=[1], g_camids=g_cams,
                        protocol="market")
    assert res["rank1"] == 1.0

"""Re-ID retrieval metrics: CMC, mAP and mINP under each benchmark's evaluation protocol.

Numpy only (the metric layer never imports torch). One function, `evaluate_reid`, serves the
harness and the `chatreid_metric` evaluate module alike.

How a query is scored
---------------------
1. The query's ranking of the gallery: ascending distance (or descending similarity), ties broken
   by gallery index (a stable sort), so results never depend on the platform's sort. Or, for a
   re-ranker, an explicit per-query ranking (see `rankings` below).
2. The protocol removes some gallery items from that ranking ("junk"); the rest is the kept
   ranking. True matches are kept items with the query's identity.
3. A query with no true match left is invalid: it is left out of every average and
   `num_valid_queries` says how many were valid.
4. AP is computed over the whole kept ranking (no cut-off), mINP is (number of true matches) /
   (1-based position of the last one), CMC@k is 1 when a true match is among the first k kept items.
   A kept ranking shorter than k counts as found (the match is in it): no ragged arrays.

Protocols, each matching the public reference code named beside it:

=================  =======================================================  =====================
protocol           junk (removed from a query's ranking)                    reference
=================  =======================================================  =====================
market             same identity and same camera; every gallery item of     torchreid eval_market1501,
                   identity -1 (Market-1501's junk boxes)                   Market-1501's evaluation code
cuhk03_classic     as market; CMC by single-gallery-shot sampling: one       torchreid eval_cuhk03
                   random kept image per gallery identity, averaged over
                   `num_repeats` (10) draws from a seeded generator; mAP and
                   mINP on the whole kept ranking
general            same identity and same camera (LTCC/PRCC "standard")      CAL evaluate
cc                 same identity and (same camera or same clothes)           CAL evaluate_with_clothes('CC')
sc                 same identity and (same camera or other clothes)          CAL evaluate_with_clothes('SC')
sysu               every gallery image of camera 2 for a query of camera 3   AGW/DDAG eval_sysu
                   (cameras numbered 1-6 as SYSU-MM01 does)
regdb              nothing                                                   AGW/DDAG eval_regdb
t2i                nothing; text queries, no cameras                         IRRA rank
=================  =======================================================  =====================

Performance: queries are processed in chunks (masks for a chunk at once, bounded memory). The
ranking itself is never built: each chunk's rows are sorted by value only (no index array; junk
pushed to the end), and each true match's place is a binary search in its row plus the items tied
with it that the (distance, gallery index) rule puts ahead of it. AP, mINP and the first hit then
come from those places for the whole chunk at once. `rankings` and cuhk03_classic's sampling need
the whole order and take a per-query path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

PROTOCOLS = ("market", "cuhk03_classic", "general", "cc", "sc", "sysu", "regdb", "t2i")

# Protocol options and their defaults.
PROTOCOL_OPTIONS: dict[str, dict[str, Any]] = {
    "market": {},
    "cuhk03_classic": {"num_repeats": 10, "seed": 0},
    "general": {},
    "cc": {},
    "sc": {},
    # dedup_cmc=True by default because eval_sysu (AGW, DDAG and the VI-ReID papers the paper
    # compares with) reports the identity-deduplicated CMC; Rank-1, mAP and mINP are the same
    # either way.
    "sysu": {"search_mode": "all", "dedup_cmc": True},
    "regdb": {},
    "t2i": {},
}

_NEEDS_CAMERAS = {"market", "cuhk03_classic", "general", "cc", "sc", "sysu"}
_NEEDS_CLOTHES = {"cc", "sc"}
# SYSU-MM01: visible cameras 1, 2, 4, 5; infrared 3, 6. Indoor search uses cameras 1 and 2 only.
_SYSU_QUERY_CAMS = (3, 6)
_SYSU_GALLERY_CAMS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}

# Working memory per chunk of queries at most (a sort buffer and a few boolean masks).
CHUNK_BYTES = 64 * 2**20


def evaluate_reid(
    distmat=None,
    q_pids=None,
    g_pids=None,
    q_camids=None,
    g_camids=None,
    q_clothes=None,
    g_clothes=None,
    protocol: str = "market",
    ranks: Iterable[int] = (1, 5, 10, 20),
    similarity: bool = False,
    *,
    rankings: Sequence[Sequence[int]] | None = None,
    **protocol_options,
) -> dict[str, Any]:
    """Score a retrieval run under a benchmark protocol.

    Args:
        distmat: (num_query, num_gallery) scores: distances (smaller is better) or, with
            `similarity=True`, similarities (larger is better). With `rankings`, optional: it then
            orders the gallery items a ranking leaves out.
        q_pids, g_pids: identity of each query / gallery item (integers or strings).
        q_camids, g_camids: camera of each item, numbered as the benchmark does (SYSU-MM01: 1-6).
            Required by every protocol except `regdb` and `t2i`.
        q_clothes, g_clothes: clothes id of each item; required by `cc` and `sc`.
        protocol: one of PROTOCOLS.
        ranks: the CMC ranks to report as `rank{k}`.
        similarity: `distmat` holds similarities.
        rankings: per query, gallery indices best first (a re-ranker's output). A ranking may cover
            part of the gallery; the items it leaves out follow it, ordered by `distmat` when one is
            given and by gallery index otherwise.
        **protocol_options: `cuhk03_classic`: num_repeats (10), seed (0); `sysu`: search_mode
            ("all" or "indoor"; checks the gallery's cameras), dedup_cmc (True).

    Returns:
        {"rank1": ..., "rank5": ..., "cmc": [...], "mAP": ..., "mINP": ..., "num_valid_queries": n}
        with fractions in 0-1; `cmc` has max(ranks) entries.
    """
    run = _checked_run(distmat, q_pids, g_pids, q_camids, g_camids, q_clothes, g_clothes, protocol, ranks,
                       similarity, rankings, protocol_options)
    tally = _Tally(len(run.q_pids), run.max_rank)
    for chunk in _chunks(run):
        if run.rankings is None and run.rng is None:
            _match_chunk(run, chunk, tally)
        else:  # a re-ranker's rankings, or cuhk03_classic's sampling: per query
            _match_each_query(run, chunk, tally)
    return _aggregate(run, tally)


# --- evaluate_reid's steps: check the inputs, match each chunk of queries, aggregate -----------


@dataclass
class _Run:
    """One evaluate_reid call's checked inputs."""

    protocol: str
    options: dict
    ranks: list[int]
    max_rank: int
    q_pids: np.ndarray
    g_pids: np.ndarray
    scores: np.ndarray | None  # the (num_query, num_gallery) matrix as given (sliced per chunk)
    similarity: bool
    rankings: Sequence[Sequence[int]] | None
    cams: tuple[np.ndarray, np.ndarray] | None
    clothes: tuple[np.ndarray, np.ndarray] | None
    g_junk: np.ndarray | None  # gallery items junk for every query (market: identity -1), or None
    dedup: bool  # sysu's identity-deduplicated CMC
    rng: np.random.Generator | None  # cuhk03_classic's single-gallery-shot sampling


@dataclass
class _Tally:
    """Per-query results as the chunks fill them in."""

    num_q: int
    max_rank: int

    def __post_init__(self):
        self.first_hit = np.full(self.num_q, -1, dtype=np.int64)  # 0-based kept rank of the first match (-1: invalid)
        self.ap = np.zeros(self.num_q)
        self.inp = np.zeros(self.num_q)
        self.cmc_sum = np.zeros(self.max_rank)  # cuhk03_classic: sampled CMC, summed over valid queries
        self.work = None  # the fast path's sort buffer (see _match_chunk)


@dataclass
class _Chunk:
    """Queries ``start:stop``: their identity mask over the gallery, their junk, their scores."""

    start: int
    stop: int
    same_pid: np.ndarray
    junk: np.ndarray | None
    block: np.ndarray | None  # ascending-is-better scores of these rows (similarities negated)
    rows: int  # the chunk size every chunk but the last has


def _checked_run(distmat, q_pids, g_pids, q_camids, g_camids, q_clothes, g_clothes, protocol, ranks,
                 similarity, rankings, protocol_options) -> _Run:
    """evaluate_reid's arguments, checked (one clear ValueError for each mistake) and normalised."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    options = _protocol_options(protocol, protocol_options)
    ranks = _ranks(ranks)

    if q_pids is None or g_pids is None:
        raise ValueError("q_pids and g_pids are required")
    q_pids = _ids("q_pids", q_pids)
    g_pids = _ids("g_pids", g_pids)
    _same_kind("q_pids", q_pids, "g_pids", g_pids)
    num_q, num_g = len(q_pids), len(g_pids)
    if num_q == 0:
        raise ValueError("q_pids: there are no queries")
    if num_g == 0:
        raise ValueError("g_pids: the gallery is empty")

    scores = None
    if distmat is not None:
        scores = _scores(distmat, num_q, num_g, "distmat")
    if rankings is not None:
        if len(rankings) != num_q:
            raise ValueError(f"rankings has {len(rankings)} rows but q_pids has {num_q} queries")
    elif scores is None:
        raise ValueError("distmat is required (or pass per-query rankings with rankings=)")

    cams = clothes = None
    if protocol in _NEEDS_CAMERAS:
        cams = _pair("camids", q_camids, g_camids, num_q, num_g, protocol)
    elif q_camids is not None or g_camids is not None:
        # Not used by this protocol, but a shape mistake is still a mistake.
        if q_camids is None or g_camids is None:
            raise ValueError("q_camids and g_camids go together: pass both or neither")
        _pair("camids", q_camids, g_camids, num_q, num_g, protocol)
    if protocol in _NEEDS_CLOTHES:
        clothes = _pair("clothes", q_clothes, g_clothes, num_q, num_g, protocol)
    if protocol == "sysu":
        _check_sysu_cameras(*cams, options["search_mode"])

    # Market-1501's own evaluation also drops the junk boxes (identity -1) for every query; loaders
    # that drop them at reading time (torchreid) make this a no-op
    g_junk = (g_pids == -1) if protocol == "market" and g_pids.dtype.kind in "iu" else None
    if g_junk is not None and not g_junk.any():
        g_junk = None
    return _Run(protocol=protocol, options=options, ranks=ranks, max_rank=max(ranks), q_pids=q_pids,
                g_pids=g_pids, scores=scores, similarity=similarity, rankings=rankings, cams=cams,
                clothes=clothes, g_junk=g_junk, dedup=protocol == "sysu" and options["dedup_cmc"],
                rng=np.random.default_rng(options["seed"]) if protocol == "cuhk03_classic" else None)


def _chunks(run: _Run):
    """The queries in chunks, in order, each with its masks and its (checked) rows of scores."""
    num_q, num_g = len(run.q_pids), len(run.g_pids)
    scores = run.scores
    # About 16 bytes of working memory per element of a chunk (the sort buffer and a few masks):
    # at most CHUNK_BYTES, and at most a third of the matrix, so the peak stays within 1.5x a
    # small matrix too (1 MiB at least, so tiny inputs are not cut into single rows).
    budget = CHUNK_BYTES if scores is None else min(CHUNK_BYTES, max(scores.nbytes // 3, 2**20))
    rows = max(1, budget // (16 * num_g))
    for start in range(0, num_q, rows):
        stop = min(num_q, start + rows)
        same_pid = run.g_pids[None, :] == run.q_pids[start:stop, None]
        junk = _junk(run.protocol, same_pid, run.cams, run.clothes, start, stop)
        if run.g_junk is not None:
            junk = junk | run.g_junk[None, :]
        block = None
        if scores is not None:
            block = np.asarray(scores[start:stop])
            if not np.isfinite(block).all():
                r, c = np.argwhere(~np.isfinite(block))[0]
                raise ValueError(f"distmat has a NaN or infinite value at row {start + r}, column {c}")
            if run.similarity:
                block = -block  # descending similarity == ascending negated similarity, exactly
        yield _Chunk(start, stop, same_pid, junk, block, rows)


def _match_chunk(run: _Run, chunk: _Chunk, tally: _Tally) -> None:
    """The fast path: every query of the chunk at once, from the places of its true matches."""
    start, stop, junk, block = chunk.start, chunk.stop, chunk.junk, chunk.block
    good = chunk.same_pid if junk is None else chunk.same_pid & ~junk
    if tally.work is None:
        # The sort buffer, reused by every chunk: a fresh chunk-sized array per chunk would
        # page-fault in again each time, which costs about as much as the sort.
        tally.work = np.empty((min(chunk.rows, len(run.q_pids)), len(run.g_pids)), dtype=block.dtype)
    rows_of, pos, bounds = _match_positions(block, good, junk, tally.work)
    k = np.diff(bounds)
    hit = np.flatnonzero(k)
    if hit.size == 0:
        return
    place = np.arange(pos.size) - np.repeat(bounds[:-1], k)  # 0-based place among the row's matches
    ap_sum = np.bincount(rows_of, weights=(place + 1.0) / (pos + 1.0), minlength=stop - start)
    q = start + hit
    tally.ap[q] = ap_sum[hit] / k[hit]
    tally.inp[q] = k[hit] / (pos[bounds[hit + 1] - 1] + 1.0)
    tally.first_hit[q] = pos[bounds[hit]]
    if run.dedup:
        for r in hit:
            kept = None if junk is None else ~junk[r]
            tally.first_hit[start + r] = _distinct_before(run.g_pids, kept, None, block, r, good[r], pos[bounds[r]])


def _match_each_query(run: _Run, chunk: _Chunk, tally: _Tally) -> None:
    """The per-query path, over each query's whole kept order: a re-ranker's rankings, or
    cuhk03_classic's sampling (which draws from ``run.rng`` query by query, in order)."""
    junk, block = chunk.junk, chunk.block
    for r in range(chunk.stop - chunk.start):
        q = chunk.start + r
        kept = None if junk is None or not junk[r].any() else ~junk[r]
        good = chunk.same_pid[r] if kept is None else chunk.same_pid[r] & kept
        order = None
        if run.rankings is not None:  # checked even for a query without a match
            order = _ranking_order(run.rankings[q], q, len(run.g_pids), None if block is None else block[r])
        if not good.any():
            continue
        if order is not None:
            if kept is not None:
                order = order[kept[order]]
        else:  # cuhk03_classic samples from the whole kept order
            order = np.argsort(block[r], kind="stable")
            if kept is not None:
                order = order[kept[order]]
        pos = np.flatnonzero(good[order])
        k = pos.size
        tally.ap[q] = np.sum(np.arange(1, k + 1) / (pos + 1.0)) / k
        tally.inp[q] = k / (pos[-1] + 1.0)
        tally.first_hit[q] = pos[0]
        if run.dedup:
            tally.first_hit[q] = _distinct_before(run.g_pids, kept, order, block, r, good, pos[0])
        if run.rng is not None:
            tally.cmc_sum += _single_shot_cmc(run.g_pids[order], run.q_pids[q], run.max_rank,
                                              run.options["num_repeats"], run.rng)


def _aggregate(run: _Run, tally: _Tally) -> dict[str, Any]:
    """CMC, mAP and mINP over the valid queries (those with a true match left)."""
    max_rank = run.max_rank
    valid = tally.first_hit >= 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise ValueError(
            f"no query has a true match in the gallery under protocol {run.protocol!r}: check q_pids/g_pids"
            + (" and the cameras" if run.cams is not None else "")
        )
    if run.rng is not None:
        cmc = tally.cmc_sum / n_valid
    else:
        hits = np.bincount(np.minimum(tally.first_hit[valid], max_rank), minlength=max_rank + 1)[:max_rank]
        cmc = np.cumsum(hits) / n_valid
    result: dict[str, Any] = {f"rank{k}": float(cmc[k - 1]) for k in run.ranks}
    result["cmc"] = [float(c) for c in cmc]
    result["mAP"] = float(tally.ap[valid].mean())
    result["mINP"] = float(tally.inp[valid].mean())
    result["num_valid_queries"] = n_valid
    return result


# --- the ranking of one query ----------------------------------------------------------------


def pair_auc(pos, neg) -> float:
    """P(a positive's score > a negative's), ties counting half: 0.5 is chance, 1 perfect. How well
    a scorer separates same-identity pairs from other-identity ones (the demo's P(Yes) report)."""
    p, n = np.asarray(pos, dtype=float)[:, None], np.asarray(neg, dtype=float)[None]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def _match_positions(block, good, junk, work):
    """0-based places of every query's true matches in its kept (distance, gallery index) order.

    Sorts the chunk's rows by value only, in place in `work`, with the junk moved to the end as
    +inf (the distances are finite, so nothing kept ties with it): a value sort needs no index
    array and runs several times faster than a stable argsort. A match's place is then the number
    of kept items strictly closer (a binary search in its sorted row) plus the kept items of equal
    distance and smaller gallery index: its fellow matches of that distance ahead of it, and, only
    where a non-match has exactly a match's distance (rare with real-valued scores), the non-matches
    counted directly.

    Returns (row of each match, its place, per-row bounds): places ascending within a row, the
    matches of row r at [bounds[r], bounds[r + 1]).
    """
    n = block.shape[0]
    w = work[:n]
    np.copyto(w, block)
    if junk is not None:
        np.copyto(w, np.inf, where=junk)
    w.sort(axis=1)
    num_g = block.shape[1]
    flat = np.flatnonzero(good)  # by row, then gallery index (1-D nonzero is much faster than 2-D)
    rows_of, cols = np.divmod(flat, num_g)
    values = block.reshape(-1)[flat] if block.flags.c_contiguous else block[rows_of, cols]
    by = np.lexsort((values, rows_of))  # stable: by row, distance, then gallery index
    rows_of, cols, values = rows_of[by], cols[by], values[by]
    bounds = np.searchsorted(rows_of, np.arange(n + 1))
    closer = np.empty(flat.size, dtype=np.int64)
    equal = np.empty(flat.size, dtype=np.int64)
    for r in np.flatnonzero(np.diff(bounds)):
        a, b = bounds[r], bounds[r + 1]
        closer[a:b] = w[r].searchsorted(values[a:b], "left")
        equal[a:b] = w[r].searchsorted(values[a:b], "right")
    equal -= closer
    # Groups of matches with the same row and distance; a match's fellow matches ahead of it are
    # those of its group with a smaller gallery index.
    index = np.arange(flat.size)
    new = np.ones(flat.size, dtype=bool)
    new[1:] = (rows_of[1:] != rows_of[:-1]) | (values[1:] != values[:-1])
    group_start = np.maximum.accumulate(np.where(new, index, 0))
    group = np.cumsum(new) - 1
    group_size = np.bincount(group)[group]
    pos = closer + index - group_start
    for i in np.flatnonzero(equal > group_size):  # a non-match has exactly this match's distance
        r, c = rows_of[i], cols[i]
        tied = block[r, :c] == values[i]
        if junk is not None:
            tied &= ~junk[r, :c]
        pos[i] = closer[i] + np.count_nonzero(tied)
    return rows_of, pos, bounds


def _ranking_order(ranking, q: int, num_g: int, fallback_row: np.ndarray | None) -> np.ndarray:
    """The full gallery order of a query: its ranking, then the rest by fallback score, then index."""
    r = np.asarray(ranking)
    if r.ndim != 1 or (r.size and r.dtype.kind not in "iu"):
        raise ValueError(f"rankings[{q}] must be a flat list of integer gallery indices")
    r = r.astype(np.int64, copy=False)
    if r.size and (r.min() < 0 or r.max() >= num_g):
        bad = r[(r < 0) | (r >= num_g)][0]
        raise ValueError(f"rankings[{q}] holds gallery index {bad}, outside 0..{num_g - 1}")
    listed = np.zeros(num_g, dtype=bool)
    listed[r] = True
    if np.count_nonzero(listed) != r.size:
        counts = np.bincount(r, minlength=num_g)
        raise ValueError(f"rankings[{q}] lists gallery index {int(np.argmax(counts > 1))} more than once")
    rest = np.flatnonzero(~listed)
    if fallback_row is not None and rest.size:
        rest = rest[np.argsort(fallback_row[rest], kind="stable")]
    return np.concatenate((r, rest))


def _distinct_before(g_pids, kept, order, block, r, good, first) -> int:
    """Identity-deduplicated rank of the first match (eval_sysu's CMC): the number of distinct
    identities among the kept items ranked before it."""
    if order is not None:  # gallery indices of the kept ranking
        return int(np.unique(g_pids[order[:first]]).size)
    row = block[r]
    gi = np.flatnonzero(good)
    d0 = row[gi].min()
    i0 = gi[np.argmax(row[gi] == d0)]  # the first match: smallest distance, then smallest index
    ahead = (row < d0) | ((row == d0) & (np.arange(row.size) < i0))
    if kept is not None:
        ahead &= kept
    return int(np.unique(g_pids[ahead]).size)


def _single_shot_cmc(ranked_pids, q_pid, max_rank: int, repeats: int, rng) -> np.ndarray:
    """CUHK03 classic CMC of one query: one uniformly drawn image per gallery identity, repeated."""
    codes, ranked = np.unique(ranked_pids, return_inverse=True)
    target = int(np.flatnonzero(codes == q_pid)[0])
    n = ranked.size
    cmc = np.zeros(max_rank)
    for _ in range(repeats):
        u = rng.random(n)
        by_pid = np.lexsort((-u, ranked))  # grouped by identity, highest draw first
        starts = np.flatnonzero(np.r_[True, ranked[by_pid][1:] != ranked[by_pid][:-1]])
        chosen = by_pid[starts]  # ranked positions of the drawn image of each identity
        rank = np.count_nonzero(chosen < chosen[target])
        if rank < max_rank:
            cmc[rank:] += 1.0
    return cmc / repeats


# --- protocol filtering ------------------------------------------------------------------------


def _junk(protocol, same_pid, cams, clothes, start, stop):
    """Boolean (chunk, num_gallery) mask of the gallery items removed from each query's ranking."""
    if protocol in ("regdb", "t2i"):
        return None
    q_cam, g_cam = cams[0][start:stop, None], cams[1][None, :]
    if protocol == "sysu":
        return (q_cam == 3) & (g_cam == 2)
    same_cam = q_cam == g_cam
    if protocol in ("market", "cuhk03_classic", "general"):
        return same_pid & same_cam
    same_clothes = clothes[0][start:stop, None] == clothes[1][None, :]
    if protocol == "cc":
        return same_pid & (same_cam | same_clothes)
    return same_pid & (same_cam | ~same_clothes)  # sc


def _check_sysu_cameras(q_cams, g_cams, mode) -> None:
    bad = np.setdiff1d(q_cams, _SYSU_QUERY_CAMS)
    if bad.size:
        raise ValueError(
            f"q_camids: SYSU-MM01 queries come from the infrared cameras 3 and 6 (numbered 1-6), got camera {bad[0]}"
        )
    allowed = _SYSU_GALLERY_CAMS[mode]
    bad = np.setdiff1d(g_cams, allowed)
    if bad.size:
        raise ValueError(
            f"g_camids: a SYSU-MM01 {mode}-search gallery holds cameras {allowed}, got camera {bad[0]}"
        )


# --- input checks --------------------------------------------------------------------------------


def _protocol_options(protocol: str, given: dict) -> dict:
    known = PROTOCOL_OPTIONS[protocol]
    unknown = sorted(set(given) - set(known))
    if unknown:
        takes = ", ".join(known) or "no options"
        raise ValueError(f"unknown option {unknown[0]!r} for protocol {protocol!r} (it takes: {takes})")
    options = {**known, **given}
    if protocol == "cuhk03_classic":
        if not _is_int(options["num_repeats"]) or options["num_repeats"] < 1:
            raise ValueError(f"num_repeats must be a positive integer, got {options['num_repeats']!r}")
        if options["seed"] is not None and not _is_int(options["seed"]):
            raise ValueError(f"seed must be an integer or None, got {options['seed']!r}")
    if protocol == "sysu":
        if options["search_mode"] not in _SYSU_GALLERY_CAMS:
            raise ValueError(f"search_mode must be 'all' or 'indoor', got {options['search_mode']!r}")
        if not isinstance(options["dedup_cmc"], (bool, np.bool_)):
            raise ValueError(f"dedup_cmc must be True or False, got {options['dedup_cmc']!r}")
    return options


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _ranks(ranks) -> list[int]:
    if isinstance(ranks, (int, np.integer)):
        ranks = [ranks]
    ranks = list(ranks)
    if not ranks or not all(_is_int(k) and k >= 1 for k in ranks):
        raise ValueError(f"ranks must be a non-empty list of positive integers, got {ranks!r}")
    return [int(k) for k in ranks]


def _ids(name: str, values, n: int | None = None) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if n is not None and a.size != n:
        raise ValueError(f"{name} has {a.size} entries, expected {n}")
    if a.dtype.kind == "f" and a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        a = a.astype(np.int64)  # e.g. ids that passed through a float tensor
    if a.size and a.dtype.kind not in "iuUSb":
        raise ValueError(f"{name} must hold integers or strings, got dtype {a.dtype}")
    return a


def _same_kind(name_a, a, name_b, b) -> None:
    # 3 == "3" is False: comparing ints with strings would silently find no match at all.
    numeric = lambda x: x.dtype.kind in "iub"  # noqa: E731
    if a.size and b.size and numeric(a) != numeric(b):
        raise ValueError(f"{name_a} ({a.dtype}) and {name_b} ({b.dtype}) must both be integers or both strings")


def _pair(what, q, g, num_q, num_g, protocol):
    if q is None or g is None:
        missing = "q_" + what if q is None else "g_" + what
        raise ValueError(f"{missing} is required by protocol {protocol!r}")
    q = _ids("q_" + what, q, num_q)
    g = _ids("g_" + what, g, num_g)
    _same_kind("q_" + what, q, "g_" + what, g)
    return q, g


def _scores(distmat, num_q: int, num_g: int, name: str):
    d = distmat if isinstance(distmat, np.ndarray) else np.asarray(distmat)
    if d.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (num_query, num_gallery) matrix, got shape {d.shape}")
    if d.shape != (num_q, num_g):
        raise ValueError(
            f"{name} has shape {d.shape} but q_pids has {num_q} and g_pids has {num_g} entries"
        )
    if d.dtype.kind in "iub":
        d = d.astype(np.float64)  # exact for any practical integer score; NaN marks "no match" below
    elif d.dtype.kind != "f":
        raise ValueError(f"{name} must hold numbers, got dtype {d.dtype}")
    return d

"""Speed of `chatreid.metrics.evaluate_reid` against sorting baselines, same matrix, one run.

    OMP_NUM_THREADS=1 python bench/metric_speed.py                  # Market-1501-sized: 3,368 x 15,913
    OMP_NUM_THREADS=1 python bench/metric_speed.py --size msmt --sort-chunk 256 --repeats 1
                                                                    # MSMT17-sized: 11,659 x 82,161
    OMP_NUM_THREADS=1 python bench/metric_speed.py --size market --classic   # + torchreid's loop (minutes)

Random float32 distances, random identities and cameras (market protocol). The paths run in turn,
--repeats rounds of each, interleaved, and the table gives each path's median and its ratio to
`evaluate_reid`'s median:

- vectorised baseline: torchreid's eval_market1501 as written, one numpy `argsort` of
  the whole matrix (numpy's default kind: SIMD introsort; ties in whatever order it leaves them)
  and a Python loop over queries, with its per-element Python AP replaced by the numpy expression;
- lean baseline: the same sort, then per query only the places of its matches (less work per
  query than torchreid's loop: the strongest sorting baseline here);
- the lean baseline with a stable `argsort`, once: the tie rule `evaluate_reid` documents, so its
  results must be identical (CMC exactly, mAP/mINP to 1e-12), which the script checks (exit status
  1 otherwise); the default-kind baselines can differ only where a non-match ties with a match;
- with --classic, torchreid's eval_market1501 (with the mINP of AGW's version): the same loop with
  its per-element Python AP, rows sorted --classic-chunk at a time (stable).

--sort-chunk N sorts N rows at a time in the vectorised baselines (a whole-matrix argsort needs
8 bytes an element: about 7.7 GB at MSMT17 size); 0, the default, is one argsort of the matrix.
Memory: "peak RSS" is the process's peak resident set during a path (VmHWM, reset before it, after
freed heap memory is handed back with malloc_trim), interpreter and matrix included; "(matrix +
working) / matrix" counts the matrix and what the path needed above the resident set at its start.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time

import numpy as np

from chatreid.metrics import evaluate_reid

VECTORISED = "vectorised baseline: torchreid's loop, one default argsort, numpy AP"
LEAN = "lean baseline: one default argsort, then only the matches' places"
STABLE = "lean baseline with a stable argsort (evaluate_reid's tie rule), once"

SIZES = {
    # name: (queries, gallery, identities, cameras)
    "msmt": (11_659, 82_161, 3_060, 15),
    "market": (3_368, 15_913, 751, 6),
}


def lean_eval(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20, kind=None, chunk=0):
    """The lean sort baseline: argsort every row (in one call unless `chunk`), then per query only
    the places of its matches in the sorted row (market protocol)."""
    num_q = distmat.shape[0]
    chunk = chunk or num_q
    cmc = np.zeros(max_rank)
    aps, inps = [], []
    for start in range(0, num_q, chunk):
        indices = np.argsort(distmat[start : start + chunk], axis=1, kind=kind)
        for r, order in enumerate(indices):
            q = start + r
            same = g_pids[order] == q_pids[q]
            kept = ~(same & (g_camids[order] == q_camids[q]))
            pos = np.flatnonzero(same[kept])
            if pos.size == 0:
                continue
            k = pos.size
            aps.append(np.sum(np.arange(1, k + 1) / (pos + 1.0)) / k)
            inps.append(k / (pos[-1] + 1.0))
            if pos[0] < max_rank:
                cmc[pos[0]:] += 1
    n = len(aps)
    return {"cmc": cmc / n, "mAP": float(np.mean(aps)), "mINP": float(np.mean(inps)), "num_valid_queries": n}


def classic_eval(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20, chunk=256, kind="stable",
                 python_ap=True):
    """torchreid's eval_market1501 loop, rows sorted `chunk` at a time (0: all at once). With
    python_ap=False its per-element list comprehension is the numpy expression it stands for."""
    num_q, num_g = distmat.shape
    chunk = chunk or num_q
    all_cmc, all_ap, all_inp = [], [], []
    for start in range(0, num_q, chunk):
        indices = np.argsort(distmat[start : start + chunk], axis=1, kind=kind)
        matches = (g_pids[indices] == q_pids[start : start + chunk, np.newaxis]).astype(np.int32)
        for r in range(indices.shape[0]):
            q_idx = start + r
            order = indices[r]
            remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
            keep = np.invert(remove)
            raw_cmc = matches[r][keep]
            if not np.any(raw_cmc):
                continue
            cmc = raw_cmc.cumsum()
            last = np.max(np.where(raw_cmc == 1))
            all_inp.append(cmc[last] / (last + 1.0))
            cmc[cmc > 1] = 1
            all_cmc.append(cmc[:max_rank])
            num_rel = raw_cmc.sum()
            tmp_cmc = raw_cmc.cumsum()
            if python_ap:
                tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
            else:
                tmp_cmc = tmp_cmc / np.arange(1.0, tmp_cmc.size + 1)
            tmp_cmc = np.asarray(tmp_cmc) * raw_cmc
            all_ap.append(tmp_cmc.sum() / num_rel)
    cmc = np.asarray(all_cmc).astype(np.float64).sum(0) / len(all_cmc)
    return {"cmc": cmc, "mAP": float(np.mean(all_ap)), "mINP": float(np.mean(all_inp)), "num_valid_queries": len(all_ap)}


def _release() -> None:
    """Hand freed heap memory back to the OS, so that one path's leftovers do not count in the
    next path's peak (glibc keeps freed blocks of up to 32 MB in the heap)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> bool:
    _release()
    try:  # Linux: writing 5 resets VmHWM, the peak resident set
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _peak_bytes() -> int:
    return _status_bytes("VmHWM")


def _same(fast, ref) -> bool:
    return (fast["num_valid_queries"] == ref["num_valid_queries"]
            and np.array_equal(np.asarray(fast["cmc"][: len(ref["cmc"])]), np.asarray(ref["cmc"]))
            and abs(fast["mAP"] - ref["mAP"]) <= 1e-12 and abs(fast["mINP"] - ref["mINP"]) <= 1e-12)


def _difference(fast, ref) -> str:
    return (f"max |CMC| difference {np.max(np.abs(np.asarray(fast['cmc'][: len(ref['cmc'])]) - ref['cmc'])):.2g}, "
            f"mAP {abs(fast['mAP'] - ref['mAP']):.2g}, mINP {abs(fast['mINP'] - ref['mINP']):.2g}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="market")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of each path (medians are reported)")
    parser.add_argument("--sort-chunk", type=int, default=0,
                        help="rows the vectorised baselines sort at a time (0: the whole matrix in one argsort)")
    parser.add_argument("--classic", action="store_true", help="also time torchreid's loop (once; slow)")
    parser.add_argument("--classic-chunk", type=int, default=256, help="rows the classic loop sorts at a time")
    parser.add_argument("--classic-queries", type=int, default=None,
                        help="run the classic loop on the first N queries only and scale its time by "
                             "queries/N (it is linear in queries); results are compared on those N")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    nq, ng, nid, ncam = SIZES[args.size]
    rng = np.random.default_rng(args.seed)
    distmat = rng.random((nq, ng), dtype=np.float32)
    g_pids = rng.integers(0, nid, ng)
    q_pids = rng.integers(0, nid, nq)
    g_camids = rng.integers(1, ncam + 1, ng)
    q_camids = rng.integers(1, ncam + 1, nq)
    ids = (q_pids, g_pids, q_camids, g_camids)
    gib = 2**30
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"size={args.size}: {nq} x {ng} float32 ({distmat.nbytes / gib:.2f} GiB), {nid} ids, {ncam} cameras, "
          f"{args.repeats} rounds, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at start", flush=True)

    chunk = args.sort_chunk
    paths = {
        "evaluate_reid": lambda: evaluate_reid(distmat, *ids, protocol="market"),
        VECTORISED: lambda: classic_eval(distmat, *ids, chunk=chunk, kind=None, python_ap=False),
        LEAN: lambda: lean_eval(distmat, *ids, chunk=chunk),
    }
    times = {name: [] for name in paths}
    peaks = dict.fromkeys(paths, 0)
    extra = dict.fromkeys(paths, 0)  # peak above the resident set at the path's start
    results = {}
    can_reset = True
    for round_ in range(args.repeats):  # interleaved, so that a change of load touches every path
        for name, run in paths.items():
            can_reset = _reset_peak() and can_reset
            rss0 = _status_bytes("VmRSS")
            t0 = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - t0)
            peaks[name] = max(peaks[name], _peak_bytes())
            extra[name] = max(extra[name], _peak_bytes() - rss0)
        print(f"round {round_ + 1}: " + ", ".join(f"{times[n][-1]:.2f} s" for n in paths), flush=True)
    # The stable sort is there to check results (same tie rule, so identical), and is slow: once.
    _reset_peak()
    rss0 = _status_bytes("VmRSS")
    t0 = time.perf_counter()
    results[STABLE] = lean_eval(distmat, *ids, kind="stable", chunk=chunk)
    times[STABLE] = [time.perf_counter() - t0]
    peaks[STABLE] = _peak_bytes()
    extra[STABLE] = peaks[STABLE] - rss0
    med = {name: float(np.median(t)) for name, t in times.items()}

    classic_row = ""
    same_classic = True
    if args.classic:
        n = min(args.classic_queries or nq, nq)
        scale = nq / n
        _reset_peak()
        rss0 = _status_bytes("VmRSS")
        t0 = time.perf_counter()
        ref = classic_eval(distmat[:n], q_pids[:n], g_pids, q_camids[:n], g_camids, chunk=args.classic_chunk)
        t_classic = (time.perf_counter() - t0) * scale
        peak_classic = _peak_bytes()
        note = "" if n == nq else f", first {n} queries, time x {scale:.1f}"
        fast = results["evaluate_reid"] if n == nq else evaluate_reid(distmat[:n], q_pids[:n], g_pids, q_camids[:n],
                                                                      g_camids, protocol="market")
        same_classic = _same(fast, ref)
        classic_row = (f"| classic loop (torchreid, rows sorted {args.classic_chunk} at a time{note}; once) | "
                       f"{t_classic:.2f} | {t_classic / med['evaluate_reid']:.1f} | {peak_classic / gib:.2f} | "
                       f"{1 + (peak_classic - rss0) / distmat.nbytes:.2f} | {'identical' if same_classic else 'DIFFERENT'} |")

    fast = results["evaluate_reid"]
    same_stable = _same(fast, results[STABLE])
    print()
    print("| path | median time (s) | time / evaluate_reid's | peak RSS (GiB) | (matrix + working) / matrix | results |")
    print("|---|---|---|---|---|---|")
    for name in times:
        if name == "evaluate_reid":
            verdict = "-"
        elif name == STABLE:
            verdict = "identical" if same_stable else "DIFFERENT"
        else:  # a default (unstable) sort may order a non-match tied with a match either way
            verdict = "identical" if _same(fast, results[name]) else _difference(fast, results[name])
        print(f"| {name} | {med[name]:.3f} | {med[name] / med['evaluate_reid']:.1f} | {peaks[name] / gib:.2f} | "
              f"{1 + extra[name] / distmat.nbytes:.2f} | {verdict} |")
    if classic_row:
        print(classic_row)
    print()
    print("rounds (s): " + "; ".join(f"{n.split(':')[0]}: " + " ".join(f"{t:.2f}" for t in times[n]) for n in paths))
    print(f"speed-up: {med[VECTORISED] / med['evaluate_reid']:.1f}x the vectorised baseline (target 5x), "
          f"{med[LEAN] / med['evaluate_reid']:.1f}x the lean one; evaluate_reid's memory "
          f"{1 + extra['evaluate_reid'] / distmat.nbytes:.2f}x the matrix, matrix + its working memory "
          f"(target at most 1.5x); process peak {peaks['evaluate_reid'] / gib:.2f} GiB")
    print(f"evaluate_reid: rank1 {fast['rank1']:.6f}, mAP {fast['mAP']:.9f}, mINP {fast['mINP']:.9f}, "
          f"valid {fast['num_valid_queries']}")
    if not can_reset:
        print("note: could not reset the peak between paths; each peak includes the earlier paths'")
    return 0 if same_stable and same_classic else 1


if __name__ == "__main__":
    sys.exit(main())

"""Speed of `chatreid.metrics.evaluate_reid` against the classic per-query loop, same matrix.

    OMP_NUM_THREADS=1 python bench/metric_speed.py               # MSMT17-sized: 11,659 x 82,161
    OMP_NUM_THREADS=1 python bench/metric_speed.py --size market  # Market-1501-sized: 3,368 x 15,913

Random float32 distances, random identities and cameras (market protocol). The two paths run one
after the other on the same matrix, so their peaks are never held at once. The classic loop is
torchreid's eval_market1501 (with the mINP of AGW's version): argsort every row, then a Python loop
over queries. It sorts the rows in chunks of --classic-chunk rows (the same algorithm; sorting the
whole matrix at once needs about 22 GB at MSMT17 size) and with a stable sort, the tie rule
`evaluate_reid` documents, so both must give identical results, which the script checks.

Peak memory is the process's peak resident set during each path (VmHWM, reset before each path),
which includes the distance matrix itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from chatreid.metrics import evaluate_reid

SIZES = {
    # name: (queries, gallery, identities, cameras)
    "msmt": (11_659, 82_161, 3_060, 15),
    "market": (3_368, 15_913, 751, 6),
}


def classic_eval(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20, chunk=256):
    """torchreid's eval_market1501 loop, rows sorted `chunk` at a time."""
    num_q, num_g = distmat.shape
    all_cmc, all_ap, all_inp = [], [], []
    for start in range(0, num_q, chunk):
        indices = np.argsort(distmat[start : start + chunk], axis=1, kind="stable")
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
            tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
            tmp_cmc = np.asarray(tmp_cmc) * raw_cmc
            all_ap.append(tmp_cmc.sum() / num_rel)
    cmc = np.asarray(all_cmc).astype(np.float64).sum(0) / len(all_cmc)
    return {"cmc": cmc, "mAP": float(np.mean(all_ap)), "mINP": float(np.mean(all_inp)), "num_valid_queries": len(all_ap)}


def _reset_peak() -> bool:
    try:  # Linux: writing 5 resets VmHWM, the peak resident set
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="msmt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classic-chunk", type=int, default=256, help="rows the classic loop sorts at a time")
    parser.add_argument("--classic-queries", type=int, default=None,
                        help="run the classic loop on the first N queries only and scale its time by "
                             "queries/N (it is linear in queries); results are compared on those N")
    args = parser.parse_args(argv)

    nq, ng, nid, ncam = SIZES[args.size]
    rng = np.random.default_rng(args.seed)
    distmat = rng.random((nq, ng), dtype=np.float32)
    g_pids = rng.integers(0, nid, ng)
    q_pids = rng.integers(0, nid, nq)
    g_camids = rng.integers(1, ncam + 1, ng)
    q_camids = rng.integers(1, ncam + 1, nq)
    gib = 2**30
    print(f"size={args.size}: {nq} x {ng} float32 ({distmat.nbytes / gib:.2f} GiB), {nid} ids, {ncam} cameras, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)

    can_reset = _reset_peak()
    t0 = time.perf_counter()
    fast = evaluate_reid(distmat, q_pids, g_pids, q_camids, g_camids, protocol="market")
    t_fast = time.perf_counter() - t0
    peak_fast = _peak_bytes()
    print(f"evaluate_reid: {t_fast:.1f} s, peak {peak_fast / gib:.2f} GiB", flush=True)

    n = min(args.classic_queries or nq, nq)
    scale = nq / n
    _reset_peak()
    t0 = time.perf_counter()
    ref = classic_eval(distmat[:n], q_pids[:n], g_pids, q_camids[:n], g_camids, chunk=args.classic_chunk)
    t_classic = (time.perf_counter() - t0) * scale
    peak_classic = _peak_bytes()
    note = "" if n == nq else f" (measured on {n} queries, scaled by {scale:.1f})"
    print(f"classic loop:  {t_classic:.1f} s{note}, peak {peak_classic / gib:.2f} GiB", flush=True)
    if n < nq:  # compare on the same queries
        fast = evaluate_reid(distmat[:n], q_pids[:n], g_pids, q_camids[:n], g_camids, protocol="market")

    # Context for the figures: how much of the classic time is the sort itself.
    t0 = time.perf_counter()
    for start in range(0, n, args.classic_chunk):
        np.argsort(distmat[start : min(n, start + args.classic_chunk)], axis=1, kind="stable")
    t_sort = (time.perf_counter() - t0) * scale
    print(f"argsort of every row alone: {t_sort:.1f} s{note}", flush=True)

    same = (
        fast["num_valid_queries"] == ref["num_valid_queries"]
        and np.array_equal(np.asarray(fast["cmc"]), ref["cmc"])
        and abs(fast["mAP"] - ref["mAP"]) <= 1e-12
        and abs(fast["mINP"] - ref["mINP"]) <= 1e-12
    )
    ratio = peak_fast / distmat.nbytes
    print()
    print("| path | time (s) | peak RSS (GiB) | peak / matrix |")
    print("|---|---|---|---|")
    print(f"| evaluate_reid (chunked) | {t_fast:.1f} | {peak_fast / gib:.2f} | {ratio:.2f} |")
    print(f"| classic loop (rows sorted {args.classic_chunk} at a time){note} | {t_classic:.1f} | "
          f"{peak_classic / gib:.2f} | {peak_classic / distmat.nbytes:.2f} |")
    print(f"| (context) stable argsort of every row, nothing else{note} | {t_sort:.1f} | | |")
    print()
    print(f"speed-up {t_classic / t_fast:.1f}x; identical results{' on those queries' if n < nq else ''}: {same} "
          f"(rank1 {fast['rank1']:.6f} vs {ref['cmc'][0]:.6f}, mAP {fast['mAP']:.9f} vs {ref['mAP']:.9f}, "
          f"mINP {fast['mINP']:.9f} vs {ref['mINP']:.9f}, valid {fast['num_valid_queries']} vs {ref['num_valid_queries']})")
    if not can_reset:
        print("note: could not reset the peak between paths; the classic peak includes the first path's")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

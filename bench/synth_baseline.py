"""Colour-histogram Re-ID baseline on the default synthetic Market benchmark.

    OMP_NUM_THREADS=1 python bench/synth_baseline.py [--ids 200] [--seed 0] [--root DIR]

Generates `chatreid synth --layout market --ids 200 --seed 0` into a temporary folder (or reads
--root), ranks bounding_box_test for every query with the HSV histogram of chatreid.baselines, and
prints Rank-1 / mAP under the Market protocol (same-camera same-identity gallery images ignored)
next to what chance would give.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from chatreid.baselines import chi_square_distance, color_histogram_features, cosine_distance
from chatreid.data.synthpeds import generate, load_ground_truth
from chatreid.metrics import evaluate_reid


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ids", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", help="an existing SynthPeds market folder (default: generate one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or Path(tmp) / "market")
        if not args.root:
            generate("market", root, args.ids, seed=args.seed)
        truth = load_ground_truth(root)
        q = [r for r in truth.values() if r["split"] == "query"]
        g = [r for r in truth.values() if r["split"] == "gallery"]
        print(f"{root}: {len(q)} queries, {len(g)} gallery images, {len({r['pid'] for r in q})} test identities")
        ids = lambda rows, k: np.array([r[k] for r in rows])  # noqa: E731
        rows = []
        for stripes in (1, 6):
            t = time.perf_counter()
            fq = color_histogram_features([root / r["path"] for r in q], stripes=stripes)
            fg = color_histogram_features([root / r["path"] for r in g], stripes=stripes)
            for name, dist in (("cosine", cosine_distance), ("chi-square", chi_square_distance)):
                res = evaluate_reid(dist(fq, fg), ids(q, "pid"), ids(g, "pid"), ids(q, "camid"), ids(g, "camid"),
                                    protocol="market")
                rows.append((f"HSV 8x4x4+4 grey, {stripes} stripe(s), {name}", res["rank1"], res["mAP"]))
            print(f"  features for {stripes} stripe(s): {time.perf_counter() - t:.1f} s")
        # Chance: a random ranking, same protocol.
        rng = np.random.default_rng(0)
        res = evaluate_reid(rng.random((len(q), len(g))), ids(q, "pid"), ids(g, "pid"), ids(q, "camid"),
                            ids(g, "camid"), protocol="market")
        rows.append(("random ranking (chance)", res["rank1"], res["mAP"]))
        print(f"{'method':<44} {'Rank-1':>7} {'mAP':>7}")
        for name, r1, m in rows:
            print(f"{name:<44} {100 * r1:6.1f}% {100 * m:6.1f}%")


if __name__ == "__main__":
    main()

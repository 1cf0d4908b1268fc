"""SynthPeds generation speed: images per second on one core at 128x64.

    OMP_NUM_THREADS=1 python bench/synth_speed.py [--ids 50] [--repeats 5]

Pins itself to one CPU core, then times (a) end-to-end `generate("market", ...)` (planning,
drawing, camera effects, captions, JPEG encoding, file writes, ground truth) and (b) drawing alone,
each repeated; prints the median and the spread next to the target (200 images/s).
Both wall-clock and CPU time are reported: on a shared machine the wall clock also counts the
time other processes hold the core, CPU time counts only ours (file-system waits excluded).
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from chatreid.data.synthpeds import cameras, generate, render, sample_identity

TARGET = 200.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ids", type=int, default=50, help="identities per run (12 images each)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    generate("market", tempfile.mkdtemp() + "/warm", 2, seed=99)  # imports, caches

    runs = {"end to end, wall": [], "end to end, CPU": [], "drawing only, wall": [], "drawing only, CPU": []}
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t, c = time.perf_counter(), time.process_time()
            n = generate("market", f"{tmp}/m", args.ids, seed=r)["images"]
            runs["end to end, wall"].append(n / (time.perf_counter() - t))
            runs["end to end, CPU"].append(n / (time.process_time() - c))
        cams = cameras("market", r)
        people = [sample_identity(r, pid) for pid in range(1, args.ids + 1)]
        t, c = time.perf_counter(), time.process_time()
        for i, p in enumerate(people):
            for k in range(12):
                render(p.traits, p.outfits[0], cams[1 + k % 6], np.random.default_rng([r, i, k]), (128, 64))
        runs["drawing only, wall"].append(12 * len(people) / (time.perf_counter() - t))
        runs["drawing only, CPU"].append(12 * len(people) / (time.process_time() - c))

    def fmt(xs):
        return f"median {statistics.median(xs):7.1f} img/s  (min {min(xs):.1f}, max {max(xs):.1f}, {len(xs)} runs)"

    print(f"SynthPeds market layout, 128x64, {args.ids * 12} images per run, one core")
    for name, xs in runs.items():
        print(f"  {name:<20} {fmt(xs)}")
    wall = statistics.median(runs["end to end, wall"])
    print(f"  {'target':<20} median {TARGET:7.1f} img/s end to end -> wall clock "
          f"{'meets' if wall >= TARGET else 'does NOT meet'} it (load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

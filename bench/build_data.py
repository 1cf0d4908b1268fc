"""Instruction-data build speed, peak memory and on-disk size, per stage.

Target: 3,000,000 stage-2 rows from a SynthPeds-like store of >= 10,000 identities in
under 10 minutes on 2 cores, peak memory under 4 GB, and a dataset whose size does not grow with
the images a row refers to (ids only, never image bytes).

The store is ``chatreid.instructions.standin``: SynthPeds-like metadata (attributes, captions,
infrared images, several outfits per identity) with placeholder pixels, because the engine reads
metadata only and rendering 10,000 identities' images would dominate the run. Each stage is built
in a child process (``chatreid build-data``'s code path, ``--num-proc`` workers); peak memory is
the largest sum of resident memory over that process and its workers, sampled every 0.2 s (shared
copy-on-write pages count once per process, so this over-estimates).

    OMP_NUM_THREADS=1 python bench/build_data.py                 # full: 3M stage-2 rows
    OMP_NUM_THREADS=1 python bench/build_data.py --stage2-rows 200000 --stage3-rows 50000  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc] + proc.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_measured(cmd: list[str]) -> tuple[dict, float, int, float]:
    """(the child's JSON line, wall seconds, peak resident bytes, CPU seconds of the tree)."""
    cpu0 = cpu_children()
    start = time.time()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], tree_rss(proc))
            except psutil.Error:
                pass
            done.wait(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = child.communicate()
    done.set()
    t.join()
    if child.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {child.returncode}")
    return (json.loads(out.strip().splitlines()[-1]), time.time() - start, peak[0],
            cpu_children() - cpu0)


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def worker(args) -> None:
    """One build in this process (run as a child of the benchmark)."""
    from chatreid.instructions import BuildConfig, build

    extra = {}
    if args.gallery:
        extra["gallery" if args.stage == 2 else "reid_gallery"] = tuple(args.gallery)
    cfg = BuildConfig(stage=args.stage, size=args.size, seed=0, **extra)
    info = build(args.store, args.out, cfg, num_proc=args.num_proc, progress=False)
    print(json.dumps({"rows": info["rows"], "seconds": info["seconds"]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identities", type=int, default=10_000)
    ap.add_argument("--stage2-rows", type=int, default=3_000_000)
    ap.add_argument("--stage3-rows", type=int, default=500_000)
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--work", help="folder for the store and outputs (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the outputs")
    ap.add_argument("--stages", default="1,2,3")
    # worker mode
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stage", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--gallery", type=int, nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    from chatreid.instructions.standin import DatasetSpec, make_store

    work = args.work or tempfile.mkdtemp(prefix="chatreid-bench-data-")
    os.makedirs(work, exist_ok=True)
    store = os.path.join(work, "store")
    t = time.time()
    if not os.path.exists(store):
        make_store(store, [DatasetSpec("synthpeds", args.identities, images=(4, 12), infrared=0.25,
                                       outfits=2, test_identities=args.identities // 10)])
    from chatreid.data.store import ImageStore

    n_images = len(ImageStore.load(store))
    print(f"store: {args.identities} train identities (+{args.identities // 10} test), "
          f"{n_images} images, made in {time.time() - t:.1f} s")
    me = [sys.executable, os.path.abspath(__file__), "--worker", "--store", store,
          "--num-proc", str(args.num_proc)]
    sizes = {1: None, 2: args.stage2_rows, 3: args.stage3_rows}
    results = {}
    for stage in [int(s) for s in args.stages.split(",")]:
        out = os.path.join(work, f"stage{stage}")
        shutil.rmtree(out, ignore_errors=True)
        cmd = me + ["--stage", str(stage), "--out", out] + (
            ["--size", str(sizes[stage])] if sizes[stage] else [])
        info, wall, peak, cpu = run_measured(cmd)
        rows = sum(info["rows"].values())
        size = dir_bytes(out)
        results[stage] = (rows, wall, peak, size)
        print(f"stage {stage}: {rows} rows in {wall:.1f} s wall ({rows / wall:,.0f} rows/s; "
              f"generation {info['seconds']['rows']:.1f} s), {cpu:.1f} CPU s over all processes "
              f"({rows / cpu:,.0f} rows per CPU second), peak memory {peak / 2**30:.2f} GiB, "
              f"on disk {size / 2**20:.0f} MiB ({size / rows:.0f} bytes/row), "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)

    # Size against images per row: the same number of stage-2 rows with small and large galleries.
    probe = 100_000
    sizes_per = []
    for gallery in ((2, 4), (12, 16)):
        out = os.path.join(work, f"probe{gallery[0]}")
        shutil.rmtree(out, ignore_errors=True)
        run_measured(me + ["--stage", "2", "--out", out, "--size", str(probe), "--gallery",
                           str(gallery[0]), str(gallery[1])])
        import datasets

        dsd = datasets.load_from_disk(out)
        imgs = sum(sum(len(x) for x in dsd[s]["image_ids"]) for s in dsd)
        sizes_per.append((gallery, dir_bytes(out), imgs))
        shutil.rmtree(out, ignore_errors=True)
    (g1, b1, i1), (g2, b2, i2) = sizes_per
    per_ref = (b2 - b1) / (i2 - i1)
    print(f"size vs images per row ({probe} stage-2 rows): galleries {g1}: {i1 / probe:.2f} images/row, "
          f"{b1 / probe:.0f} bytes/row; galleries {g2}: {i2 / probe:.2f} images/row, "
          f"{b2 / probe:.0f} bytes/row; each extra image reference costs {per_ref:.0f} bytes "
          f"(its id and its 'Image k:' label), independent of the image's own size")
    if not args.work and not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

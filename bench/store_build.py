"""Image store build: images per second and peak memory, at 20,000 and 100,000 images.

    OMP_NUM_THREADS=1 python bench/store_build.py [--sizes 20000 100000] [--keep DIR]

Makes a Market-1501-style folder of small JPEG files (128x64, ~2-4 KB, a few hundred distinct
pictures written under real Market file names; the store decodes each file once, so what it
measures is the real per-image work), then, for each size, builds a store in a fresh
subprocess (``chatreid store build``'s code path: reader + ``build``) and reports wall time,
images/s, the subprocess's peak RSS (ru_maxrss, which includes the memory-mapped Arrow pages
the kernel can drop) and the peak anonymous (heap) RSS of reading + building, sampled every
20 ms. Reading the folder is timed separately. The subprocess imports datasets (about 85 MiB of
heap by itself).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, threading, time
# ru_maxrss also counts pages of the memory-mapped Arrow files (file-backed, reclaimable), which
# grow with the store; the anonymous (heap) peak is what bounded memory is about: sample it.
peak_anon = [0]
def sample():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon"):
                peak_anon[0] = max(peak_anon[0], int(line.split()[1]) // 1024)
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
from chatreid.data import read
from chatreid.data.builder import build
from chatreid.data.store import ImageStore
root, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
records = read("market1501", root)
t1 = time.perf_counter()
report = build([records], out, progress=False)
t2 = time.perf_counter()
build_anon = peak_anon[0]  # heap peak of read + build, before the checks below load metadata
store = ImageStore.load(out)
meta = store.metadata()
t3 = time.perf_counter()
iid = store.ids()[len(store) // 2]
store.image(iid)
t4 = time.perf_counter()
print(json.dumps({"images": report.num_images, "read_s": t1 - t0, "build_s": t2 - t1,
                  "load_metadata_s": t3 - t2, "first_image_s": t4 - t3,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "build_anon_mib": build_anon, "peak_anon_mib": peak_anon[0]}))
"""


def make_layout(root: Path, n: int, variants: int = 256) -> None:
    """n images spread over Market's three folders, ~1/3 identities' worth each."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(variants):
        # Smooth random colours + noise: compresses like a real small crop (a few KB).
        base = rng.integers(0, 255, (8, 4, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((64, 128), Image.BILINEAR)
        arr = np.asarray(img).astype(np.int16) + rng.integers(-12, 12, (128, 64, 3))
        buf = io.BytesIO()
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        blobs.append(buf.getvalue())
    folders = ["bounding_box_train", "bounding_box_test", "query"]
    for f in folders:
        (root / f).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        folder = folders[0] if i % 10 < 6 else (folders[1] if i % 10 < 9 else folders[2])
        pid, cam = 1 + (i // 20) % 1500, 1 + i % 6
        name = f"{pid:04d}_c{cam}s{1 + i % 6}_{i:06d}_{1 + i % 9:02d}.jpg"
        (root / folder / name).write_bytes(blobs[i % variants])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    ap.add_argument("--keep", help="work folder to keep (default: a temp folder, removed)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="chatreid-bench-store-"))
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_HOME=str(work / "hf"))
    print(f"# image store build, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"{'images':>8} {'read s':>7} {'build s':>8} {'img/s':>7} {'peak RSS MiB':>12} "
          f"{'build heap MiB':>14} {'store MiB':>9} {'load+meta s':>11}")
    try:
        for n in args.sizes:
            root = work / f"market-{n}"
            t = time.perf_counter()
            make_layout(root, n)
            made = time.perf_counter() - t
            out = work / f"store-{n}"
            proc = subprocess.run([sys.executable, "-c", CHILD, str(root), str(out)], env=env,
                                  capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"build of {n} images failed:\n{proc.stderr}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
            print(f"{r['images']:>8} {r['read_s']:>7.2f} {r['build_s']:>8.1f} "
                  f"{r['images'] / r['build_s']:>7.0f} {r['peak_rss_mib']:>12.0f} "
                  f"{r['build_anon_mib']:>14.0f} {size:>9.0f} "
                  f"{r['load_metadata_s']:>11.2f}   (layout written in {made:.0f} s)", flush=True)
            shutil.rmtree(root)
            shutil.rmtree(out)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Load test of the chat app: N concurrent gradio_client sessions, each with its own gallery.

    python bench/app_load.py [--clients 8] [--gallery 50] [--model PATH_OR_HUB_ID]

Launches app.py in this process (default model resolution, so the tiny model unless told
otherwise), then each client, in its own thread and session: uploads a zip of ``--gallery``
SynthPeds images, asks with a query photo, adds a sentence, and picks result #2 as the new query.
Every request's latency is measured at the client (queue wait included: the model calls share one
concurrency slot, as the app is configured). Prints p50/p95 per request kind and overall, and
fails (exit 1) if any request errored or any answer lacks its ranked gallery.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_gallery_zips(n_clients: int, size: int, out: Path) -> tuple[list[Path], Path]:
    """One zip of ``size`` SynthPeds images per client (different seeds), and a query photo."""
    import json
    import subprocess

    zips = []
    ids = (size + 3) // 4
    for c in range(n_clients):
        world = out / f"world{c}"
        subprocess.run([sys.executable, "-m", "chatreid", "synth", "--layout", "market", "--ids",
                        str(ids), "--images-per-id", "4", "--seed", str(100 + c), "--out", str(world)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = [json.loads(x) for x in (world / "synthpeds.jsonl").read_text().splitlines() if x]
        paths = sorted(world / r["path"] for r in rows)[:size]
        if len(paths) < size:
            raise SystemExit(f"SynthPeds gave {len(paths)} images, fewer than {size}")
        z = out / f"gallery{c}.zip"
        with zipfile.ZipFile(z, "w") as zf:
            for p in paths:
                zf.write(p, p.name)
        zips.append(z)
    return zips, paths[0]


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--gallery", type=int, default=50)
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    os.environ["CHATREID_MAX_GALLERY"] = str(max(args.gallery, 200))

    import app
    from chatreid.app_support import Limits, app_default_model
    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp(prefix="chatreid-load-"))
    zips, query = make_gallery_zips(args.clients, args.gallery, tmp)
    t0 = time.perf_counter()
    choice = app_default_model(args.model)
    engine = app.load_engine(choice)
    limits = Limits.from_env()
    demo = app.build_demo(engine, choice, limits)
    _, url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True, quiet=True)
    print(f"model {choice.name_or_path} ({choice.source}); app up in {time.perf_counter() - t0:.1f} s;"
          f" concurrency {limits.concurrency}, {os.environ.get('OMP_NUM_THREADS', '?')} torch threads")

    latencies: dict[str, list[float]] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def timed(kind, fn):
        t = time.perf_counter()
        out = fn()
        with lock:
            latencies.setdefault(kind, []).append(time.perf_counter() - t)
        return out

    def client_run(c: int) -> None:
        try:
            cl = Client(url, verbose=False, download_files=False)
            history, _ = timed("upload_gallery", lambda: cl.predict(
                [handle_file(str(zips[c]))], api_name="/upload_gallery"))
            turns = [("ask", {"text": "Find this person in the gallery.", "files": [handle_file(str(query))]}),
                     ("add_sentence", {"text": "she carries a black backpack", "files": []}),
                     ("pick_result", {"text": "use #2 as the query", "files": []})]
            for kind, msg in turns:
                history, results, _ = timed(kind, lambda: cl.predict(msg, "auto", api_name="/chat"))
                if len(results) != args.gallery:
                    raise RuntimeError(f"{kind}: {len(results)} ranked images, expected {args.gallery}: "
                                       f"{history[-1]['content']}")
        except Exception as err:  # noqa: BLE001 - every failure is reported
            with lock:
                errors.append(f"client {c}: {type(err).__name__}: {err}")

    t = time.perf_counter()
    threads = [threading.Thread(target=client_run, args=(c,)) for c in range(args.clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    demo.close()

    all_lat = [x for xs in latencies.values() for x in xs]
    print(f"{args.clients} clients x {args.gallery}-image galleries: {len(all_lat)} requests in "
          f"{wall:.1f} s wall, {len(errors)} errors")
    print(f"{'request':16s} {'n':>3s} {'p50 s':>7s} {'p95 s':>7s} {'max s':>7s}")
    for kind, xs in list(latencies.items()) + [("all", all_lat)]:
        print(f"{kind:16s} {len(xs):3d} {statistics.median(xs):7.2f} {percentile(xs, 0.95):7.2f} {max(xs):7.2f}")
    for e in errors:
        print("ERROR", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

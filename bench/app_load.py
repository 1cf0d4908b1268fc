"""Load test of the chat app: N concurrent gradio_client sessions, each with its own gallery.

    python bench/app_load.py [--clients 8] [--gallery 50] [--model PATH_OR_HUB_ID]
    python bench/app_load.py --attacks [--model PATH_OR_HUB_ID]

``--attacks`` instead measures what hostile inputs cost the server (RSS of this process, which
runs the app, and wall time at the client): a 3.5 MB zip of 60 single-colour 4096x4096 PNGs, a
100,000-character message, and a zip of 180 entries of 19 MB each (3.5 MB on disk); after each,
an ordinary search of the same session must still work.

Launches app.py (default model resolution: the embedded demo model when present, else the tiny
model), then each client, in its own thread and session: uploads a zip of ``--gallery``
SynthPeds images, asks with a query photo, adds a sentence, and picks result #2 as the new query.
Every request's latency is measured at the client (queue wait included: the model calls share one
concurrency slot, as the app is configured). The server runs in its own process, whose RSS is read
before the load, right after it and ``--settle`` seconds later. Prints p50/p95 per request kind
and overall, the load average, and the server's RSS; fails (exit 1) if any request errored, any
answer lacks its ranked gallery, or the server's RSS stays more than 200 MB above its level
before the load (issue 24, item 9). ``--clients 80 --gallery 10`` is the crowd check (no
"Queue is full").
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

# After a load, the server's RSS comes back to within this of its level before (docs/app.md).
MEMORY_MARGIN_MB = 200


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


def rss_mb() -> float:
    """Resident memory of this process (the app runs in it), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_attack_files(out: Path) -> dict[str, Path]:
    """The hostile inputs of docs/benchmarks.md ("Hostile inputs"), built in a few seconds."""
    import io

    from PIL import Image

    pngs = []
    for c in range(6):  # 6 distinct single-colour 4096x4096 PNGs, 10 copies each under new names
        buf = io.BytesIO()
        Image.new("RGB", (4096, 4096), (40 * c, 255 - 40 * c, 90)).save(buf, "PNG")
        pngs.append(buf.getvalue())
    pixels = out / "pixels60.zip"
    with zipfile.ZipFile(pixels, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(60):
            zf.writestr(f"big_{i:02d}.png", pngs[i % 6])
    bomb = out / "bomb180.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        blob = b"\0" * (19 * 1024 * 1024)
        for i in range(180):
            zf.writestr(f"x_{i:03d}.png", blob)
    return {"pixels": pixels, "bomb": bomb}


def run_attacks(url: str, query: Path, gallery_zip: Path, tmp: Path, engine, limits, store) -> int:
    import gc

    from chatreid.chat.uploads import UploadError, check_message

    from gradio_client import Client, handle_file

    files = make_attack_files(tmp)
    cl = Client(url, verbose=False, download_files=False)
    failures = []

    def step(what, fn, expect):
        gc.collect()
        r0, t = rss_mb(), time.perf_counter()
        history = fn()[0]
        dt = time.perf_counter() - t
        gc.collect()
        said = str(history[-1]["content"])
        ok = expect in said
        print(f"{what:44s} {dt:7.2f} s  RSS {r0:7.0f} -> {rss_mb():7.0f} MB ({rss_mb() - r0:+4.0f})"
              f"  images held {store.held_bytes() / 2**20:6.1f} MB"
              f"  {'ok' if ok else 'UNEXPECTED: ' + said[:200]}")
        if not ok:
            failures.append(what)

    def search(what):
        step(what, lambda: cl.predict({"text": "Find this person.", "files": [handle_file(str(query))]},
                                      "auto", api_name="/chat"), "Best matches")

    print(f"{'input':44s} {'time':>9s}  RSS before -> after (this process: app and client)")
    step("50-image SynthPeds gallery (zip)", lambda: cl.predict(
        [handle_file(str(gallery_zip))], api_name="/upload_gallery"), "Gallery ready")
    search("search, 50 images")
    step(f"60 x 4096x4096 PNG zip ({files['pixels'].stat().st_size / 1e3:.0f} kB)",
         lambda: cl.predict([handle_file(str(files['pixels']))], api_name="/upload_gallery"),
         "Gallery ready: 60 images")
    search("search, 60 reduced images")
    step("'help' (no model work: the round-trip floor)", lambda: cl.predict(
        {"text": "help", "files": []}, "auto", api_name="/chat"), "Upload a gallery")
    step("100,000-character message", lambda: cl.predict(
        {"text": "a" * 100_000, "files": []}, "auto", api_name="/chat"), "characters long")
    search("search after the refused message")
    step(f"180 x 19 MB zip ({files['bomb'].stat().st_size / 1e6:.1f} MB)",
         lambda: cl.predict([handle_file(str(files['bomb']))], api_name="/upload_gallery"),
         "nothing was unpacked")
    search("search after the refused zip")
    t = time.perf_counter()
    try:
        check_message("a" * 100_000, limits, engine.count_tokens)
    except UploadError:
        pass
    print(f"the handler's own check of the 100,000-character message: "
          f"{(time.perf_counter() - t) * 1e3:.3f} ms")
    for f in failures:
        print("ERROR", f)
    return 1 if failures else 0


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def serve(conn, model, gallery_size: int) -> None:
    """The app in its own process (the load's server): launched, then answers the parent's
    questions on ``conn`` until told to stop. Its RSS is the server's alone, clients excluded."""
    import gc

    import app
    from chatreid.chat.settings import Limits, app_default_model

    t0 = time.perf_counter()
    choice = app_default_model(model)
    engine = app.load_engine(choice)
    limits = Limits.from_env()
    demo = app.build_app(engine, choice, limits)
    _, url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True, quiet=True)
    store = demo.chatreid_sessions
    conn.send({"url": url, "model": choice.name_or_path, "source": choice.source,
               "up_s": time.perf_counter() - t0, "concurrency": limits.concurrency,
               "queue_size": limits.queue_size})
    while True:
        what = conn.recv()
        if what == "stop":
            demo.close()
            conn.send(None)
            return
        gc.collect()
        conn.send({"rss_mb": rss_mb(), "sessions": len(store), "held_mb": store.held_bytes() / 2**20})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--gallery", type=int, default=50)
    ap.add_argument("--model", default=None)
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds after the load before the server's memory is read again")
    ap.add_argument("--attacks", action="store_true",
                    help="measure hostile inputs (one session) instead of concurrent clients")
    args = ap.parse_args(argv)
    if args.attacks:
        args.clients = 1
    os.environ["CHATREID_MAX_GALLERY"] = str(max(args.gallery, 200))

    tmp = Path(tempfile.mkdtemp(prefix="chatreid-load-"))
    zips, query = make_gallery_zips(args.clients, args.gallery, tmp)
    if args.attacks:
        return attacks_in_process(args, zips, query, tmp)

    import multiprocessing as mp

    from gradio_client import Client, handle_file

    # The server runs in a child process: its memory is measured without the clients'.
    parent, child = mp.get_context("spawn").Pipe()
    server = mp.get_context("spawn").Process(target=serve, args=(child, args.model, args.gallery),
                                             daemon=True)
    server.start()
    info = parent.recv()
    url = info["url"]

    def server_state() -> dict:
        parent.send("state")
        return parent.recv()

    print(f"model {info['model']} ({info['source']}); app up in {info['up_s']:.1f} s; concurrency "
          f"{info['concurrency']}, queue size {info['queue_size']}, "
          f"{os.environ.get('OMP_NUM_THREADS', '?')} torch threads; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    before = server_state()

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
                # an image used as the query is left out of its own ranking (and the answer says so)
                said = str(history[-1]["content"])
                expected = args.gallery - (1 if "Left out of the ranking" in said else 0)
                if len(results) != expected:
                    raise RuntimeError(f"{kind}: {len(results)} ranked images, expected {expected}: "
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
    load = os.getloadavg()
    after = server_state()
    time.sleep(args.settle)
    settled = server_state()
    parent.send("stop")
    parent.recv()
    server.join(timeout=30)

    all_lat = [x for xs in latencies.values() for x in xs]
    print(f"{args.clients} clients x {args.gallery}-image galleries: {len(all_lat)} requests in "
          f"{wall:.1f} s wall, {len(errors)} errors; load average at the end "
          f"{' '.join(f'{x:.2f}' for x in load)}")
    print(f"{'request':16s} {'n':>3s} {'p50 s':>7s} {'p95 s':>7s} {'max s':>7s}")
    for kind, xs in list(latencies.items()) + [("all", all_lat)]:
        if xs:
            print(f"{kind:16s} {len(xs):3d} {statistics.median(xs):7.2f} "
                  f"{percentile(xs, 0.95):7.2f} {max(xs):7.2f}")
    for name, st in (("before the load", before), ("right after it", after),
                     (f"{args.settle:g} s later", settled)):
        print(f"server RSS {name:16s} {st['rss_mb']:7.0f} MB  ({st['sessions']} sessions holding "
              f"{st['held_mb']:.1f} MB of images, features and encodings)")
    grew = settled["rss_mb"] - before["rss_mb"]
    print(f"server RSS after the load: {grew:+.0f} MB against before it (the app promises at most "
          f"+{MEMORY_MARGIN_MB} MB)")
    if grew > MEMORY_MARGIN_MB:
        errors.append(f"the server's RSS stayed {grew:.0f} MB above its level before the load")
    for e in errors:
        print("ERROR", e)
    return 1 if errors else 0


def attacks_in_process(args, zips, query, tmp) -> int:
    """``--attacks``: the app and one client in this process, as docs/benchmarks.md measured it."""
    import app
    from chatreid.chat.settings import Limits, app_default_model

    t0 = time.perf_counter()
    choice = app_default_model(args.model)
    engine = app.load_engine(choice)
    limits = Limits.from_env()
    demo = app.build_app(engine, choice, limits)
    _, url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True, quiet=True)
    print(f"model {choice.name_or_path} ({choice.source}); app up in {time.perf_counter() - t0:.1f} s")
    try:
        return run_attacks(url, query, zips[0], tmp, engine, limits, demo.chatreid_sessions)
    finally:
        demo.close()


if __name__ == "__main__":
    sys.exit(main())

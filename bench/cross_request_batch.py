"""Would batching the VLM's scoring across waiting chat requests help? The model time of 8 queued
photo searches, one after another as the app runs them, beside the same pairs read in one call.

    OMP_NUM_THREADS=1 python bench/cross_request_batch.py [--requests 8] [--gallery 50] [--model PATH]

Default model resolution, as the app's (the embedded demo model when it is installed). Each
request is a photo query against its own SynthPeds gallery (different seeds, as the 8 sessions of
``bench/app_load.py``), with the session's pre-filter features and VLM encodings kept (the app's
path from a session's second search on), so what is timed is what a coalescer could merge:

- one by one: ``ReIDEngine.search`` per request (pre-filter similarity, VLM scoring of the
  whole gallery with its query image's prefix shared, ranking); and the same with no encodings
  kept (the first search of a session);
- merged: the scoring of all requests' pairs in one ``Reader.read`` (the most a coalescer could
  do; its own bookkeeping not counted), at several batch sizes. Requests with different query
  images share only the text before the query image, so merged rows re-read the query image's
  tokens that a single request's prefix cache reads once.

Prints the median over ``--repeats`` of each, in ms, and the speed-up of the best merged variant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def galleries(n: int, size: int, out: Path):
    """``n`` SynthPeds galleries of ``size`` images and a query photo for each (RGB, in memory)."""
    from PIL import Image

    result = []
    for c in range(n):
        world = out / f"world{c}"
        subprocess.run([sys.executable, "-m", "chatreid", "synth", "--layout", "market", "--ids",
                        str((size + 3) // 4 + 1), "--images-per-id", "4", "--seed", str(100 + c),
                        "--out", str(world)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        rows = [json.loads(x) for x in (world / "synthpeds.jsonl").read_text().splitlines() if x]
        paths = sorted(world / r["path"] for r in rows)
        images = [Image.open(p).convert("RGB") for p in paths[:size + 1]]
        result.append((images[size], images[:size]))
    return result


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--gallery", type=int, default=50)
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    import torch

    from chatreid.chat.settings import app_default_model
    from chatreid.retrieval import Query, ReIDEngine
    from chatreid.retrieval.scorer import Item, chat_prompt, yes_no_prompt

    torch.set_grad_enabled(False)
    choice = app_default_model(args.model)
    engine = ReIDEngine.from_pretrained(choice.name_or_path)
    work = galleries(args.requests, args.gallery, Path(tempfile.mkdtemp(prefix="chatreid-xbatch-")))
    sessions = []
    for query, gallery in work:
        kept = {}
        feats = engine.prefilter_features(gallery)
        engine.search(Query(images=[query]), gallery, gallery_features=feats, gallery_encodings=kept)
        sessions.append((query, gallery, feats, kept))
    print(f"model {choice.name_or_path} ({choice.source}); {args.requests} requests x "
          f"{args.gallery}-image galleries; {torch.get_num_threads()} torch threads")

    def one_by_one(keep: bool):
        for query, gallery, feats, kept in sessions:
            engine.search(Query(images=[query]), gallery, gallery_features=feats,
                          gallery_encodings=kept if keep else None)

    sc = engine.scorer
    question, _ = yes_no_prompt("standard")
    chat = chat_prompt(engine.processor, question)
    from chatreid.retrieval.scorer import encode

    q_encs = encode(engine.model, engine.processor, [q for q, *_ in sessions])
    per_request = [[Item(sc.builder.build(chat, [q, kept[i]]), [q, kept[i]]) for i in range(len(gallery))]
                   for q, (_, gallery, _, kept) in zip(q_encs, sessions)]
    merged = [it for items in per_request for it in items]
    reads = [(1, [sc.tokens["yes"], sc.tokens["no"]])]

    def scoring_one_by_one():
        for items in per_request:
            sc.reader.read(items, reads, batch_size=16)

    rows = [("searches one by one, encodings kept (the app now)", median_ms(lambda: one_by_one(True), args.repeats)),
            ("searches one by one, no encodings kept (before)", median_ms(lambda: one_by_one(False), args.repeats)),
            ("their VLM scoring alone, one by one (batch 16)", median_ms(scoring_one_by_one, args.repeats))]
    for bs in (16, 64, 128, len(merged)):
        rows.append((f"their VLM scoring merged in one call (batch {bs})",
                     median_ms(lambda: sc.reader.read(merged, reads, batch_size=bs), args.repeats)))
    width = max(len(r[0]) for r in rows)
    print(f"{'what (all ' + str(args.requests) + ' requests)':{width}s}  {'ms':>8s}  {'ms/request':>10s}")
    for what, ms in rows:
        print(f"{what:{width}s}  {ms:8.1f}  {ms / args.requests:10.1f}")
    best = min(ms for what, ms in rows[3:])
    print(f"best merged scoring vs one by one: {rows[2][1] / best:.2f}x; model time saved per "
          f"request at best: {(rows[2][1] - best) / args.requests:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

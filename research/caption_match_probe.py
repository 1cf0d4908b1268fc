"""Held-out caption matching of a demo model: P(Yes) AUC on stage-2 ``t2i_one_to_one`` rows
("does this sentence fit this picture?") built from a store's query/gallery images, Yes for one of
the image's own captions, No for a caption of another person's image (``compare.PairSampler.match_row``).

    python research/caption_match_probe.py MODEL_DIR STORE_DIR [--dataset synthpeds_market] [--n 200]
"""

from __future__ import annotations

import argparse
import json
import random

import torch

from chatreid.data.store import ImageStore
from chatreid.metrics import pair_auc
from chatreid.model import load_model_and_processor
from chatreid.training.compare import PairSampler, yes_probabilities


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("store")
    ap.add_argument("--dataset", action="append", help="dataset names in the store (default: all)")
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    store = ImageStore.load(args.store)
    model, processor = load_model_and_processor(args.model, dtype=torch.float32)
    for dataset in args.dataset or sorted(set(store.metadata()["dataset"])):
        rng = random.Random(0)
        rows = [PairSampler(store, ("query", "gallery"), (dataset,)).match_row(rng) for _ in range(args.n)]
        scores = yes_probabilities(model, processor, store, rows)
        same = [json.loads(r["meta"])["same"] for r in rows]
        pos = [s for s, y in zip(scores, same) if y]
        neg = [s for s, y in zip(scores, same) if not y]
        print(f"{dataset}: caption-match AUC {pair_auc(pos, neg):.3f} (mean P(Yes) own caption "
              f"{sum(pos) / len(pos):.2f}, other's {sum(neg) / len(neg):.2f}; {len(rows)} rows)")


if __name__ == "__main__":
    main()

"""Best-choice against its pre-filter and pairwise, and its position bias, on a fresh SynthPeds world.

    python -m chatreid synth --layout market --ids 60 --seed 3000022 --out data/bc/market --overwrite
    OMP_NUM_THREADS=1 python bench/best_choice.py --world data/bc/market [--model models/chatreid-demo] \\
        [--top-k 20] [--window 4]

Every strategy ranks the same queries over the same gallery with the same pre-filter head (the
model's default pre-filter, top ``--top-k``), scored under the market protocol:

- pre-filter alone: the gallery by pre-filter similarity;
- pairwise: the head by P(Yes) to the Yes/No question;
- best-choice, merge (ours), as cut: pages merged by more picks, no debiasing (the ranking
  before issue 22);
- best-choice, confidence (the paper's), as cut and rotated: every head image by its P(Image k)
  in the turn that picked it (``chatreid/retrieval/best_choice.py``).

Position bias: per query, one page of ``--window`` images holding exactly one true match (a
gallery image of the query's identity from another camera) at a random position and the
pre-filter's most similar non-matches; the first pick's position is counted, read as cut and
rotated. A fair model picks each position 1/window of the time (shares printed as multiples of
that) and the match as often as it can tell it apart.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatreid.evaluation.benchmarks import check_protocol, load_trials  # noqa: E402
from chatreid.evaluation.harness import load_images  # noqa: E402
from chatreid.metrics import evaluate_reid  # noqa: E402
from chatreid.retrieval import Query, ReIDEngine  # noqa: E402
from chatreid.retrieval import best_choice as bc  # noqa: E402

VARIANTS = {  # label -> (ranking, debias)
    "best-choice, merge (ours), as cut": ("merge", "none"),
    "best-choice, confidence, as cut": ("confidence", "none"),
    "best-choice, confidence, rotated (default)": ("confidence", "rotate"),
}


def position_shares(engine, trial, gallery, feats, window: int, rng) -> dict[str, tuple[np.ndarray, float, int]]:
    """debias -> (per-position share of first picks on one-match pages, share that picked the match, pages)."""
    pids = np.array([r.pid for r in trial.gallery])
    cams = np.array([r.camid for r in trial.gallery])
    counts = {d: np.zeros(window) for d in bc.DEBIAS}
    right = dict.fromkeys(bc.DEBIAS, 0)
    pages = 0
    for q in trial.queries:
        qimg = load_images([q.path])
        sim = engine.prefilter.similarity(qimg, feats)
        matches = np.flatnonzero((pids == q.pid) & (cams != q.camid))
        others = [int(i) for i in np.argsort(-sim, kind="stable") if pids[i] != q.pid][:window - 1]
        if not len(matches) or len(others) < window - 1:
            continue
        at = int(rng.integers(window))
        page = others[:at] + [int(rng.choice(matches))] + others[at:]
        query = Query(images=qimg, task="standard")
        q_enc, cands = engine._encode(query, gallery, page, 16, None)
        for debias in bc.DEBIAS:
            picker = bc.Picker(engine.scorer.reader, engine.scorer.builder, engine.processor,
                               engine._first_turn(query, None), [q_enc], window, debias=debias)
            pick = int(np.argmax(picker.turn(cands)[0]))
            counts[debias][pick] += 1
            right[debias] += pick == at
        pages += 1
    return {d: (counts[d] / max(pages, 1), right[d] / max(pages, 1), pages) for d in bc.DEBIAS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True, help="a SynthPeds market world (chatreid synth --layout market)")
    ap.add_argument("--model", default="models/chatreid-demo")
    ap.add_argument("--prefilter", default="efficientnet_lite0", help="the demo model's pre-filter")
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0, help="where the match sits on the position-bias pages")
    args = ap.parse_args(argv)

    protocol = check_protocol("synthpeds", args.world, None)
    if protocol != "market":
        raise SystemExit(f"--world {args.world}: a market-layout world is needed, this one is scored with {protocol}")
    trial = load_trials("synthpeds", args.world, protocol)[0]
    engine = ReIDEngine.from_pretrained(args.model, prefilter=args.prefilter, window=args.window)
    gallery = load_images([r.path for r in trial.gallery])
    feats = engine.gallery_features(gallery)
    kept: dict = {}  # every image through the vision tower once for all strategies
    rankings: dict[str, list[list[int]]] = {"pre-filter alone": [], "pairwise": [], **{k: [] for k in VARIANTS}}
    seconds = dict.fromkeys(rankings, 0.0)
    for q in trial.queries:
        query = Query(images=load_images([q.path]), task="standard")
        sim = engine.prefilter.similarity(query.images, feats)
        rankings["pre-filter alone"].append([int(i) for i in np.argsort(-sim, kind="stable")])
        for label in ["pairwise", *VARIANTS]:
            strategy = "pairwise" if label == "pairwise" else "best_choice"
            if strategy == "best_choice":
                engine.ranking, engine.debias = VARIANTS[label]
            t = time.perf_counter()
            res = engine.search(query, gallery, strategy=strategy, top_k=args.top_k, gallery_features=feats,
                                gallery_encodings=kept)
            seconds[label] += time.perf_counter() - t
            rankings[label].append(res.ranking)
    ids = dict(q_pids=[q.pid for q in trial.queries], g_pids=[r.pid for r in trial.gallery],
               q_camids=[q.camid for q in trial.queries], g_camids=[r.camid for r in trial.gallery])
    print(f"{args.world}: {len(trial.queries)} queries, gallery {len(trial.gallery)}, model {args.model}, "
          f"pre-filter {args.prefilter} top {args.top_k}, window {args.window}, protocol {protocol}")
    print(f"{'strategy':46s} {'mAP':>6s} {'R1':>6s} {'s/query':>8s}  VLM passes/query")
    n = len(trial.queries)
    for label, ranks in rankings.items():
        m = evaluate_reid(**ids, protocol=protocol, rankings=ranks)
        cost = {"pre-filter alone": "0", "pairwise": str(args.top_k)}.get(label)
        if cost is None:
            cost = str(bc.passes(args.top_k, args.window, *VARIANTS[label]))
        print(f"{label:46s} {100 * m['mAP']:6.1f} {100 * m['rank1']:6.1f} {seconds[label] / n:8.3f}  {cost}")
    shares = position_shares(engine, trial, gallery, feats, args.window, np.random.default_rng(args.seed))
    for debias, (share, right, pages) in shares.items():
        print(f"first pick on one-match pages, {'rotated' if debias == 'rotate' else 'as cut':7s}: per position "
              f"{' '.join(f'{args.window * s:.2f}' for s in share)} x fair share; the match {100 * right:.1f}% "
              f"({pages} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

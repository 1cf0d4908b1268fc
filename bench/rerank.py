"""Re-ranking speed: one query against 128 candidates, the project's scorer beside a naive loop.

    OMP_NUM_THREADS=1 python bench/rerank.py                         # tiny model, CPU
    python bench/rerank.py --model-size 2b --device cuda --dtype bfloat16   # Qwen2-VL-2B shape, GPU

Both sides score the same pairs with the same model and the same question ("Do these two images
<query><candidate> contain the same pedestrian identity?"), images 252x140 (45 image tokens each,
the size of the earlier GPU figures in docs/benchmarks.md):

- naive: one pair per forward pass, the processor's own path (``naive_yes_probability``):
  preprocess both images, run the vision tower on both, the whole prompt through the language
  model, the full LM head.
Both use the model as ``ReIDEngine.from_pretrained`` loads it (vision attention batched over
equal-size images, ``chatreid.model.fast``; ``--stock-vision`` turns that off for both).

- project: ``chatreid.retrieval.scorer``: every image through the vision tower once (its patch
  embedding computed straight from the resized RGB bytes, ``scorer.patch_embeddings``), the shared
  prefix (system turn, question start, query image) once, candidate suffixes in batches, only the
  Yes/No rows of the LM head.

Prints pairs/s for each, the speed-up, and the largest score difference (must be within --tol).
``--model-size 2b`` builds a randomly initialised model of Qwen2-VL-2B's shape (speed does not
depend on the weights) with the tiny tokenizer; it needs a GPU to be practical.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatreid.retrieval import scorer as S  # noqa: E402

# Qwen2-VL-2B-Instruct's shape (its config.json), for --model-size 2b.
QWEN2_VL_2B = dict(
    text=dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
              num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
              rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]}),
    vision=dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, patch_size=14,
                spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
)


def build(size: str, device: str, dtype):
    from chatreid.model import load_model_and_processor
    from chatreid.model.tiny import build_tiny_qwen2vl

    tmp = tempfile.mkdtemp(prefix="rerank-bench-")
    build_tiny_qwen2vl(tmp, seed=0)
    model, processor = load_model_and_processor(tmp)
    if size == "2b":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        tok = processor.tokenizer
        ids = {k: tok.convert_tokens_to_ids(t) for k, t in [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                                                            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
        text = dict(QWEN2_VL_2B["text"], bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
                    eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
                    tie_word_embeddings=True)
        config = Qwen2VLConfig(text_config=text, vision_config=QWEN2_VL_2B["vision"], tie_word_embeddings=True, **ids)
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        with torch.device(device):
            model = Qwen2VLForConditionalGeneration(config)
    return model.to(device=device, dtype=dtype).eval(), processor


def images(n: int, h: int, w: int, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for _ in range(n)]


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def best_choice_seconds(model, processor, scorer, query, cands, args, reuse_cache: bool):
    """Best of --repeats: encode the images once, then best_choice.rank over the candidates with
    the stage-3 Re-ID prompt, as the engine runs it by default (confidence ranking, every page read
    in each of its rotations);
    reuse_cache: a page's turns run on its kept key/value cache (the engine's default) or each
    turn re-reads its whole conversation. Returns (seconds, forward passes, the result)."""
    from chatreid import prompts
    from chatreid.retrieval import best_choice

    def run():
        enc = S.encode(model, processor, [query] + cands, batch_size=args.batch_size)
        seen = []
        res = best_choice.rank(scorer.reader, scorer.builder, processor,
                               lambda g: prompts.render("reid_standard", gallery=g), [enc[0]], enc[1:],
                               window=args.best_choice, progress=lambda done, total: seen.append(done),
                               reuse_cache=reuse_cache)
        return (max(seen) if seen else 0), res

    passes, result = run()  # warm-up
    best = float("inf")
    for _ in range(args.repeats):
        sync(args.device)
        t = time.perf_counter()
        run()
        sync(args.device)
        best = min(best, time.perf_counter() - t)
    return best, passes, result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-size", choices=("tiny", "2b"), default="tiny")
    ap.add_argument("--candidates", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--height", type=int, default=252)
    ap.add_argument("--width", type=int, default=140)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    ap.add_argument("--naive-pairs", type=int, default=None,
                    help="time the naive loop on the first N pairs only (default: all); pairs/s is per pair")
    ap.add_argument("--repeats", type=int, default=3, help="best of N runs, each side")
    ap.add_argument("--stock-vision", action="store_true",
                    help="keep transformers' per-image vision attention (default: batched, as the engine loads it)")
    ap.add_argument("--tol", type=float, default=None, help="max |score difference| (default 1e-4 fp32, 2e-2 bf16/fp16)")
    ap.add_argument("--best-choice", type=int, default=0, metavar="WINDOW",
                    help="also time multi-turn best-choice (chatreid.retrieval.best_choice, pages of WINDOW "
                         "images, as ReIDEngine's strategy='best_choice'; 4 is its default) on the same "
                         "candidates, with and without its kept key/value cache, and report candidates/s "
                         "beside pairwise")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    tol = args.tol if args.tol is not None else (1e-4 if dtype == torch.float32 else 2e-2)
    torch.set_grad_enabled(False)

    model, processor = build(args.model_size, args.device, dtype)
    if not args.stock_vision:
        from chatreid.model.fast import enable_batched_vision_attention

        enable_batched_vision_attention(model)  # as ReIDEngine.from_pretrained does; both sides get it
    ims = images(args.candidates + 1, args.height, args.width)
    query, cands = ims[0], ims[1:]
    scorer = S.PairScorer(model, processor)

    def project():
        enc = S.encode(model, processor, [query] + cands, batch_size=args.batch_size)
        return scorer.score(enc[1:], query_image=enc[0], batch_size=args.batch_size)

    project()  # warm-up (allocator, kernels)
    best = float("inf")
    for _ in range(args.repeats):
        sync(args.device)
        t = time.perf_counter()
        fast = project()
        sync(args.device)
        best = min(best, time.perf_counter() - t)

    n_naive = args.naive_pairs or args.candidates
    S.naive_yes_probability(model, processor, [query, cands[0]])  # warm-up
    naive_s = float("inf")
    for _ in range(args.repeats):  # best of N on both sides: a shared machine's noise only slows
        sync(args.device)
        t = time.perf_counter()
        naive = np.array([S.naive_yes_probability(model, processor, [query, c]) for c in cands[:n_naive]])
        sync(args.device)
        naive_s = min(naive_s, time.perf_counter() - t)

    diff = float(np.abs(fast[:n_naive] - naive).max())
    fast_rate, naive_rate = args.candidates / best, n_naive / naive_s
    tokens = int(np.prod(processor.image_processor(images=[query], return_tensors="pt")["image_grid_thw"][0].tolist())) // 4
    print(f"model {args.model_size}{' (stock vision attention)' if args.stock_vision else ''} on {args.device} ({args.dtype}), 1 query x {args.candidates} candidates, "
          f"images {args.height}x{args.width} ({tokens} tokens each), batch {args.batch_size}")
    print(f"{'':10s} {'seconds':>9s} {'pairs/s':>9s}")
    print(f"{'naive':10s} {naive_s:9.3f} {naive_rate:9.1f}   (one pair per forward, {n_naive} pairs, best of {args.repeats})")
    print(f"{'project':10s} {best:9.3f} {fast_rate:9.1f}   (best of {args.repeats})")
    print(f"speed-up {fast_rate / naive_rate:.1f}x; max |score difference| {diff:.2e} (tolerance {tol:g})")
    if args.best_choice:
        timed = {reuse: best_choice_seconds(model, processor, scorer, query, cands, args, reuse) for reuse in (False, True)}
        for reuse, (bc_s, passes, _) in timed.items():
            name = "bc kept KV" if reuse else "bc re-read"
            how = "each page's turns on its kept key/value cache" if reuse else "every turn re-reads its conversation"
            print(f"{name:10s} {bc_s:9.3f} {args.candidates / bc_s:9.1f}   (best-choice, window {args.best_choice}, "
                  f"{passes} forward passes, {how}; candidates ranked per second, best of {args.repeats}; "
                  f"{args.candidates / bc_s / fast_rate:.2f}x pairwise)")
        (_, _, kept), (_, _, reread) = timed[True], timed[False]
        conf = float(np.abs(np.subtract(kept.confidence, reread.confidence)).max()) if kept.confidence else 0.0
        print(f"best-choice: kept cache {timed[False][0] / timed[True][0]:.2f}x re-reading; same order: "
              f"{kept.order == reread.order}, max |confidence difference| {conf:.2e}")
    if diff > tol:
        print("FAIL: scores disagree beyond the tolerance", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

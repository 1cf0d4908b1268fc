"""Training throughput on stage-2-like samples: the stock recipe vs the project's path, one run.

A sample: one query + six gallery images at 392x196 (after the stage-2 policy) and ~120 text tokens,
about 820 tokens; the answer (~10 tokens) is the only labelled text.

* stock:   TRL 1.16 SFTTrainer defaults: activation (gradient) checkpointing on, transformers'
           per-image vision attention loop, TRL's loss (its fused LM head).
* project: train/sft.py's path: batched vision attention for equal-size images
           (chatreid.model.fast), no gradient checkpointing, the same TRL loss. (On GPUs TRL's fused
           head computes logits only at labelled positions; on the CPU it scores every position.)

* liger:   (--recipes ...,liger) the project's path with `use_liger_kernel=True` (`train/sft.py
           --use_liger_kernel true`): Liger's RMSNorm, SwiGLU and RoPE kernels for Qwen2-VL; TRL 1.16
           keeps its own fused LM head instead of Liger's fused linear cross-entropy. Triton kernels:
           GPU only, and the liger-kernel package; without them the recipe is reported as not measured.

All start from the same weights and see the same batches; the script checks their losses agree
step by step. Beside samples/s it prints tokens/s and, on a GPU it knows the bf16 peak of, an MFU
estimate: 6 x (decoder parameters x sequence tokens + vision parameters x image patches) FLOPs
a sample (model FLOPs: recomputation under checkpointing is not counted), over the peak. It also reports collated stage-2 samples/s on one CPU core (image-store lookup,
resize policy, chat template, processor, label masking).

    OMP_NUM_THREADS=1 python bench/train_throughput.py                 # tiny model, CPU
    python bench/train_throughput.py --model-size 2b --batch-size 4    # random Qwen2-VL-2B shape, GPU
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

ANSWER = "These two images match the identity of the pedestrian in the query image."
PROMPT = ("Given the query image of a pedestrian and a gallery set, find all images that match the identity of the "
          "pedestrian in the query image. The pedestrian in the query image wears a red coat and black trousers and "
          "carries a backpack; answer with the numbers of the matching gallery images, in order.")


def make_store(n_images: int, seed: int = 0):
    """An in-memory image store of JPEG person crops at 400x200 (stage 2 downsizes them to 384x192)."""
    import datasets

    from chatreid.data.store import ImageStore, features

    gen = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n_images):
        arr = (torch.rand(200 // 8, 100 // 8, 3, generator=gen) * 255).to(torch.uint8).numpy()
        img = Image.fromarray(arr).resize((200, 400), Image.Resampling.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        rows.append({"image_id": f"bench/{i:05d}.jpg", "image": {"bytes": buf.getvalue(), "path": None},
                     "dataset": "bench", "path": f"{i:05d}.jpg", "pid": i // 4, "camid": i % 6, "split": "train",
                     "clothes_id": None, "modality": "visible", "captions": [], "attributes": "{}",
                     "width": 200, "height": 400})
    return ImageStore(datasets.Dataset.from_list(rows, features=features()), "bench")


def make_rows(store, n: int, images_per_sample: int = 7):
    ids = store.ids()
    rows = []
    for i in range(n):
        picked = [ids[(i * images_per_sample + j) % len(ids)] for j in range(images_per_sample)]
        content = [{"type": "image", "text": None}] * images_per_sample + [{"type": "text", "text": PROMPT}]
        rows.append({"messages": [{"role": "user", "content": content},
                                  {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}],
                     "image_ids": picked})
    return rows


def qwen2vl_2b_config(tokenizer):
    """Qwen2-VL-2B-Instruct's shapes, with the tiny tokenizer's special-token ids."""
    from transformers import Qwen2VLConfig

    ids = {k: tokenizer.convert_tokens_to_ids(t) for k, t in [
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
    text = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
                tie_word_embeddings=True, eos_token_id=ids["vision_end_token_id"],
                pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    vision = dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)


def bench_collation(processor, store, rows, batch_size: int, seconds: float) -> float:
    from chatreid.training import ReIDCollator

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    collator = ReIDCollator(processor, store, 2)
    collator(rows[:batch_size])  # warm caches (store index, tokenizer)
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        collator(rows[(n % len(rows)):(n % len(rows)) + batch_size] or rows[:batch_size])
        n += batch_size
    torch.set_num_threads(threads)
    # wall-clock rate, and the rate per second of CPU time (what one uncontended core would give)
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


# recipe: (activation checkpointing, batched vision attention, TRL's use_liger_kernel)
RECIPES = {"stock": (True, False, False), "project": (False, True, False), "liger": (False, True, True)}

# Dense bf16 peak FLOP/s of the cards an MFU estimate is given for (vendor data sheets, SXM parts).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def peak_flops(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def flops_per_sample(model, batch, batch_size: int) -> float:
    """Model FLOPs of one training sample (forward + backward = 6 x parameters x tokens)."""
    vision = sum(p.numel() for n, p in model.named_parameters() if ".visual." in f".{n}")
    text = sum(p.numel() for p in model.parameters()) - vision
    tokens = float(batch["attention_mask"].sum()) / batch_size
    patches = float(batch["image_grid_thw"].prod(dim=1).sum()) / batch_size
    return 6.0 * (text * tokens + vision * patches)


def make_trainer(model, processor, store, rows, *, checkpointing: bool, device: str, tmp: str, liger: bool = False):
    import datasets
    from trl import SFTConfig, SFTTrainer

    from chatreid.training import ReIDCollator

    args = SFTConfig(output_dir=tmp, use_cpu=device == "cpu", bf16=device == "cuda", report_to="none",
                     activation_checkpointing=checkpointing, max_length=None, remove_unused_columns=False,
                     dataset_kwargs={"skip_prepare_dataset": True}, learning_rate=1e-5, logging_steps=1000,
                     use_liger_kernel=liger)
    trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows[:4]),
                         processing_class=processor, data_collator=ReIDCollator(processor, store, 2))
    if checkpointing:  # what Trainer.train() does with activation_checkpointing=True
        model.activation_checkpointing_enable()
    if liger:  # what Trainer.train() does with use_liger_kernel=True (TRL keeps its own fused LM head)
        from transformers.integrations.liger import apply_liger_kernel

        apply_liger_kernel(model, trainer.args.liger_kernel_config)
    return trainer


def run_steps(trainer, model, batches, device):
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    losses, times = [], []
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = trainer.compute_loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(loss.detach().item())
    return losses, times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-size", choices=["tiny", "2b"], default="tiny")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per recipe (after 1 warm-up step)")
    ap.add_argument("--collate-seconds", type=float, default=5.0)
    ap.add_argument("--recipes", default="stock,project", help="comma-separated: stock, project, liger")
    args = ap.parse_args(argv)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = sorted(set(recipes) - set(RECIPES))
    if unknown or not recipes:
        ap.error(f"--recipes: unknown recipe(s) {unknown}; choose from {', '.join(RECIPES)}")

    from chatreid.model import load_model_and_processor, load_processor
    from chatreid.model.fast import enable_batched_vision_attention
    from chatreid.model.tiny import build_tiny_qwen2vl
    from chatreid.training import ReIDCollator

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tmp = tempfile.mkdtemp(prefix="chatreid-bench-")
    tiny_dir = build_tiny_qwen2vl(os.path.join(tmp, "tiny"))
    processor = load_processor(str(tiny_dir))
    store = make_store(64)
    rows = make_rows(store, 64)

    collate_rate = bench_collation(processor, store, rows, 8, args.collate_seconds)

    def fresh_model():
        if args.model_size == "tiny":
            model, _ = load_model_and_processor(str(tiny_dir), dtype=torch.float32)
        else:
            from transformers import Qwen2VLForConditionalGeneration

            torch.manual_seed(0)
            with torch.device(device):  # initialise 2.2B parameters where they will live, not on the CPU
                model = Qwen2VLForConditionalGeneration._from_config(
                    qwen2vl_2b_config(processor.tokenizer), attn_implementation="sdpa", dtype=torch.float32)
        return model.to(device)

    collator = ReIDCollator(processor, store, 2)
    n_batches = args.steps + 1
    batches = [collator(rows[i * args.batch_size:(i + 1) * args.batch_size]) for i in range(n_batches)]
    tokens = float(batches[0]["attention_mask"].sum()) / args.batch_size
    labelled = float((batches[0]["labels"] != -100).sum()) / args.batch_size

    results, skipped = {}, {}
    flops = None
    for name in recipes:
        checkpointing, batched, liger = RECIPES[name]
        model = fresh_model()
        if flops is None:
            flops = flops_per_sample(model, batches[0], args.batch_size)
        if batched:
            enable_batched_vision_attention(model)
        try:
            trainer = make_trainer(model, processor, store, rows, checkpointing=checkpointing, device=device,
                                   tmp=tmp, liger=liger)
            losses, times = run_steps(trainer, model, batches, device)
        except Exception as err:  # noqa: BLE001 - e.g. liger-kernel absent, or no GPU for its kernels
            skipped[name] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            del model
            continue
        rate = args.batch_size * len(times[1:]) / sum(times[1:])
        mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
        results[name] = (rate, losses, mem)
        del trainer, model
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    tol = 2e-2 if device == "cuda" else 1e-4
    reference = next(iter(results.values()))[1] if results else []
    same = all(all(abs(a - b) <= tol * max(1.0, abs(a)) for a, b in zip(reference, l)) for _, l, _ in results.values())
    peak = peak_flops(device)
    where = f"{device}" + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else
                           f", {torch.get_num_threads()} thread(s)")
    print(f"model: {args.model_size} Qwen2-VL (random weights), device: {where}, batch {args.batch_size}, "
          f"{tokens:.0f} tokens/sample ({labelled:.0f} labelled), 7 images at "
          f"{int(batches[0]['image_grid_thw'][0][1]) * 14}x{int(batches[0]['image_grid_thw'][0][2]) * 14}, "
          f"{flops / 1e12:.2f} TFLOP/sample (model FLOPs)")
    print(f"{'recipe':<10}{'samples/s':>12}{'tokens/s':>12}{'MFU':>8}{'first loss':>14}{'last loss':>12}{'peak GiB':>10}")
    for name, (r, l, m) in results.items():
        mfu = f"{r * flops / peak:.1%}" if peak else "n/a"
        print(f"{name:<10}{r:>12.2f}{r * tokens:>12.0f}{mfu:>8}{l[0]:>14.6f}{l[-1]:>12.6f}"
              f"{(f'{m:.1f}' if m is not None else 'n/a'):>10}")
    for name, why in skipped.items():
        print(f"{name:<10} not measured: {why}")
    if "stock" in results:
        for name in results:
            if name != "stock":
                print(f"speed-up ({name} / stock): {results[name][0] / results['stock'][0]:.2f}x")
    print(f"losses agree step by step across the recipes (tol {tol}): {same}")
    print(f"collation, stage 2, one CPU core: {collate_rate[0]:.1f} samples/s wall-clock, "
          f"{collate_rate[1]:.1f} samples per CPU-second (target >= 15; load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

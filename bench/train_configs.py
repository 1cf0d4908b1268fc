"""The stage-2 shape under each distributed configuration of train/accelerate/, through train/sft.py.

    python bench/train_configs.py --out DIR                     # GPU: random Qwen2-VL-2B shape, bf16
    python bench/train_configs.py --out DIR --dry-run           # CPU: the tiny model, the same launches

It builds (under --work) a stage-2-shaped world once: an image store of 400x200 crops, a stage-2
instruction dataset whose rows are bench/train_throughput.py's (7 images at 392x196 after the
stage-2 policy, ~820 tokens, a one-line answer), and a model folder (Qwen2-VL-2B's shape with random
weights in bf16, or the tiny model with --dry-run). Then, for each of --configs, one

    accelerate launch --config_file train/accelerate/CONFIG.yaml --num_processes N \
        bench/train_configs.py --run-sft RESULT.json -- <train/sft.py stage-2 options>

that is, train/sft.py itself with train/configs/stage2.yaml and a callback timing each optimizer
step (CUDA synchronised) and reading the peak GPU memory. Samples/s is per_device_batch x processes
over the median step after the first. Every launch has its own timeout; a launch that fails (no
deepspeed, out of memory, a timeout) is recorded with the tail of its log and the next one runs.
Writes DIR/train_configs.json and DIR/train_configs.md; exits 0 when the table is written, whatever
the launches did (the table says which ran). With one GPU every config runs on one process: the
figures show each config's cost and memory at the stage-2 shape, not multi-GPU scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("single_gpu", "fsdp", "zero2", "zero3")
RUNNING: list[subprocess.Popen] = []


def _end_launches(signum, frame):
    for proc in RUNNING:
        os.killpg(proc.pid, signal.SIGKILL)
    sys.exit(128 + signum)


def run_sft(result_path: str, sft_argv: list[str]) -> int:
    """Inside the launch: train/sft.py's run (``chatreid.training.sft.cli``) with a timing callback;
    rank 0 writes the result."""
    import torch
    from transformers import TrainerCallback

    from chatreid.training import sft

    cuda = torch.cuda.is_available()

    class Timing(TrainerCallback):
        def __init__(self):
            self.steps, self.t0 = [], None

        def on_step_begin(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.steps.append(time.perf_counter() - self.t0)

        def on_train_end(self, args, state, control, **kw):
            if args.process_index != 0:
                return
            Path(result_path).write_text(json.dumps({
                "step_seconds": self.steps, "world_size": args.world_size,
                "per_device_batch": args.per_device_train_batch_size,
                "distributed_type": args.distributed_state.distributed_type.name,
                "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                "losses": [h["loss"] for h in state.log_history if "loss" in h],
            }))

    return sft.cli(sft_argv, callbacks=[Timing()])


def build_world(work: Path, model_size: str, n_rows: int) -> dict[str, Path]:
    """Image store, stage-2 dataset and model folder (made once; reused while they exist)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import datasets
    import torch

    from chatreid.model import load_processor
    from chatreid.model.tiny import build_tiny_qwen2vl
    from train_throughput import make_rows, make_store, qwen2vl_2b_config

    paths = {"store": work / "store", "data": work / "stage2", "model": work / f"model-{model_size}"}
    tiny = work / "model-tiny"
    if not (tiny / "config.json").is_file():
        build_tiny_qwen2vl(tiny, seed=0)
    if not paths["store"].is_dir() or not paths["data"].is_dir():
        store = make_store(max(64, n_rows))
        store.dataset.save_to_disk(str(paths["store"]))
        rows = make_rows(store, n_rows)
        datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(paths["data"]))
    if model_size == "2b" and not (paths["model"] / "config.json").is_file():
        from transformers import Qwen2VLForConditionalGeneration

        processor = load_processor(str(tiny))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(0)
        with torch.device(device):
            model = Qwen2VLForConditionalGeneration._from_config(qwen2vl_2b_config(processor.tokenizer),
                                                                  dtype=torch.bfloat16)
        model.save_pretrained(paths["model"])
        processor.save_pretrained(paths["model"])
        del model
    return paths


def sft_options(paths, out: Path, args) -> list[str]:
    opts = ["--config", str(ROOT / "train/configs/stage2.yaml"), "--stage", "2",
            "--base_model", str(paths["model"]), "--previous_stage_checkpoint", str(paths["model"]),
            "--dataset_name", str(paths["data"]), "--image_store", str(paths["store"]), "--output_dir", str(out),
            "--max_steps", str(args.steps), "--save_strategy", "no", "--logging_steps", "1",
            "--per_device_train_batch_size", str(args.batch_size), "--gradient_accumulation_steps", "1",
            "--warmup_steps", "0", "--report_to", "none", "--dataloader_persistent_workers", "false"]
    if args.dry_run:
        opts += ["--use_cpu", "true", "--bf16", "false", "--dtype", "float32", "--dataloader_num_workers", "0"]
    return opts


def launch(config: str, paths, args, out_dir: Path) -> dict:
    result = out_dir / f"{config}.json"
    log = out_dir / f"{config}.log"
    result.unlink(missing_ok=True)
    cmd = ["accelerate", "launch", "--config_file", str(ROOT / "train/accelerate" / f"{config}.yaml"),
           "--num_processes", str(args.num_processes), "--num_machines", "1"]
    if args.dry_run:
        cmd += ["--mixed_precision", "no"]
    cmd += [str(Path(__file__).resolve()), "--run-sft", str(result), "--",
            *sft_options(paths, Path(args.work) / "runs" / config, args)]
    started = time.perf_counter()
    with open(log, "w") as f:
        # Its own process group, so that a timeout (ours, or the session's SIGTERM) ends the launcher
        # and every worker it started, not the launcher alone.
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        RUNNING.append(proc)
        try:
            rc = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = "timeout"
        RUNNING.remove(proc)
    wall = time.perf_counter() - started
    shutil.rmtree(Path(args.work) / "runs" / config, ignore_errors=True)  # a 2B export per config is 4.4 GB
    tail = log.read_text(errors="replace").strip().splitlines()[-6:]
    if rc != 0 or not result.is_file():
        return {"config": config, "status": f"failed (exit {rc})", "wall_s": wall, "log_tail": tail}
    r = json.loads(result.read_text())
    timed = r["step_seconds"][1:] or r["step_seconds"]
    median = sorted(timed)[len(timed) // 2]
    return {"config": config, "status": "ran", "wall_s": wall, "ran_as": r["distributed_type"],
            "processes": r["world_size"], "samples_per_s": r["per_device_batch"] * r["world_size"] / median,
            "median_step_s": median, "peak_gib": r["peak_gib"], "losses": r["losses"],
            "sharding_dropped": any("no sharding" in line for line in log.read_text(errors="replace").splitlines())}


def table(rows, args) -> str:
    where = "CPU dry run, tiny model" if args.dry_run else f"{args.model_size} Qwen2-VL shape, random weights, bf16"
    lines = [f"stage-2 shape ({where}), batch {args.batch_size} a process, {args.steps} steps "
             f"(median step after the first), {args.num_processes} process(es)", "",
             "| config | status | ran as | samples/s | median step s | peak GiB | first / last loss |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ran":
            lines.append(f"| {r['config']} | {r['status']}: {' / '.join(r['log_tail'][-2:])[:300]} | | | | | |")
            continue
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "n/a"
        losses = f"{r['losses'][0]:.4f} / {r['losses'][-1]:.4f}" if r["losses"] else ""
        ran_as = r["ran_as"] + (" (sharding not applied)" if r["sharding_dropped"] else "")
        lines.append(f"| {r['config']} | ran | {ran_as} | {r['samples_per_s']:.2f} | {r['median_step_s']:.3f} | "
                     f"{peak} | {losses} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-sft"]:
        return run_sft(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for train_configs.json / .md and the launch logs")
    ap.add_argument("--work", default="/tmp/chatreid-train-configs", help="world, model and run folders")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from {', '.join(CONFIGS)}")
    ap.add_argument("--model-size", choices=("tiny", "2b"), default="2b")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--num-processes", type=int, default=1)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per launch")
    ap.add_argument("--dry-run", action="store_true", help="CPU: tiny model, no bf16; the same launches")
    args = ap.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        ap.error(f"--configs: unknown {bad}; choose from {', '.join(CONFIGS)}")
    if args.dry_run:
        args.model_size = "tiny"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _end_launches)
    paths = build_world(Path(args.work), args.model_size, args.rows)
    rows = []
    for config in configs:
        rows.append(launch(config, paths, args, out))
        print(f"{config}: {rows[-1]['status']} ({rows[-1]['wall_s']:.0f} s)", flush=True)
        (out / "train_configs.json").write_text(json.dumps(rows, indent=1))
        (out / "train_configs.md").write_text(table(rows, args))
    print(table(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

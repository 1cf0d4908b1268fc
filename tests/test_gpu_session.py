"""bench/gpu_session.sh: its CPU dry run (the GPU session's steps on the tiny model) and its
promise to survive a failing measurement."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _session(out, *, only=None, path_prefix=None, timeout=900):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if only:
        env["ONLY"] = only
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run(["bash", str(ROOT / "bench/gpu_session.sh"), "--dry-run", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _status(out):
    lines = (out / "status.tsv").read_text().strip().splitlines()[1:]
    return {name: status for name, status, _ in (line.split("\t") for line in lines)}


def test_a_failing_measurement_does_not_stop_the_session(tmp_path):
    # a python3 that fails for the training benchmark only
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text(f'#!/bin/sh\ncase "$*" in *train_throughput.py*) echo boom >&2; exit 3;; esac\n'
                                  f'exec {shutil.which("python3") or sys.executable} "$@"\n')
    (fake / "python3").chmod(0o755)
    out = tmp_path / "out"
    res = _session(out, only="train,rerank", path_prefix=fake)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _status(out) == {"train": "failed (exit 3)", "rerank": "ok"}
    summary = (out / "summary.md").read_text()
    assert "| train | failed (exit 3) |" in summary and "pairs/s" in summary and "best-choice" in summary


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_the_figures(tmp_path):
    out = tmp_path / "out"
    res = _session(out)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _status(out) == {"rerank": "ok", "train": "ok", "train_b8": "ok", "configs": "ok"}
    rows = {r["config"]: r for r in json.loads((out / "train_configs" / "train_configs.json").read_text())}
    assert set(rows) == {"single_gpu", "fsdp", "zero2", "zero3"}
    assert rows["single_gpu"]["status"] == "ran" and rows["single_gpu"]["samples_per_s"] > 0
    # on CPUs accelerate runs the FSDP config unsharded, and the table says so
    assert rows["fsdp"]["status"] == "ran" and rows["fsdp"]["sharding_dropped"]
    for zero in ("zero2", "zero3"):  # ran where deepspeed is installed; otherwise a recorded failure
        assert rows[zero]["status"] == "ran" or "DeepSpeed" in " ".join(rows[zero]["log_tail"])
    summary = (out / "summary.md").read_text()
    assert "CPU dry run" in summary and "samples/s" in summary and "| single_gpu | ran |" in summary

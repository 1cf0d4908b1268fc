"""train/sft.py end to end on the tiny model: the three stages, LoRA, push, resume, pre-flight errors."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from chatreid.model.surgery import part_of
from chatreid.training.checks import last_complete_checkpoint
from training_data import instructions, synthpeds_store

ROOT = Path(__file__).resolve().parents[1]
SFT = ROOT / "train" / "sft.py"


def _load_sft():
    spec = importlib.util.spec_from_file_location("chatreid_train_sft", SFT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sft():
    return _load_sft()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny SynthPeds image store and its stage 1/2/3 datasets (8 train, 2 validation rows each)."""
    root = tmp_path_factory.mktemp("data")
    store = synthpeds_store(root / "synth")
    return {"store": store, **{s: instructions(store, root / f"stage{s}", s, size=10) for s in (1, 2, 3)}}


def _args(stage, data, base, out, *extra, steps=2):
    return ["--config", str(ROOT / f"train/configs/stage{stage}.yaml"), "--stage", str(stage),
            "--base_model", str(base), "--dataset_name", str(data[stage]), "--image_store", str(data["store"]),
            "--output_dir", str(out), "--use_cpu", "true", "--bf16", "false", "--dtype", "float32",
            "--max_steps", str(steps), "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--logging_steps", "1", "--save_steps", "1000", "--dataloader_num_workers", "0",
            "--dataloader_persistent_workers", "false", "--learning_rate", "1e-3", "--warmup_steps", "0",
            "--report_to", "none", *extra]


def _weights(folder):
    return load_file(Path(folder) / "final" / "model.safetensors")


def _by_part(weights):
    out = {}
    for k, v in weights.items():
        out.setdefault(part_of(k), {})[k] = v
    return out


@pytest.fixture(scope="module")
def three_stages(sft, data, tiny_model_dir, tmp_path_factory):
    """Stages 1 -> 2 -> 3 in sequence, in-process (the accelerate-launched chain is the slow test)."""
    runs = tmp_path_factory.mktemp("runs")
    assert sft.cli(_args(1, data, tiny_model_dir, runs / "s1")) == 0
    # stage 2 at learning rate 0 exports exactly the tensors it starts from, so the test can see the surgery
    assert sft.cli(_args(2, data, tiny_model_dir, runs / "s2", "--previous_stage_checkpoint", str(runs / "s1"),
                         "--learning_rate", "0")) == 0
    assert sft.cli(_args(3, data, tiny_model_dir, runs / "s3", "--previous_stage_checkpoint", str(runs / "s2"))) == 0
    return runs


def test_three_stages_chain_with_the_right_surgery(three_stages, tiny_model_dir, data):
    base = _by_part(load_file(tiny_model_dir / "model.safetensors"))
    s1, s2, s3 = (_by_part(_weights(three_stages / s)) for s in ("s1", "s2", "s3"))
    changed = lambda a, b: any(not torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    # stage 1 trained everything
    assert all(changed(s1[p], base[p]) for p in ("vision_encoder", "merger", "decoder"))
    # stage 3 left the (stage-2) encoder exactly as it was, and trained the rest
    assert not changed(s3["vision_encoder"], s2["vision_encoder"])
    assert changed(s3["decoder"], s2["decoder"]) and changed(s3["merger"], s2["merger"])
    # stage 2 = stage-1 encoder and merger + the base's decoder
    same = lambda a, b: a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert same(s2["vision_encoder"], s1["vision_encoder"]) and same(s2["merger"], s1["merger"])
    assert same(s2["decoder"], base["decoder"])
    card = (three_stages / "s3" / "final" / "README.md").read_text()
    assert "stage 3" in card and "training loss" in card and "vision_encoder | 0 |" in card
    # the tasks each stage trained travel with its weights (the engine checks its scoring prompt against them)
    from datasets import load_from_disk

    for stage in (1, 3):
        cfg = json.loads((three_stages / f"s{stage}" / "final" / "config.json").read_text())
        rows = load_from_disk(str(data[stage]))["train"]
        assert cfg["chatreid_stage"] == stage and cfg["chatreid_tasks"] == sorted(set(rows["task"]))
        # a SynthPeds store holds no split benchmark: recorded as none (chatreid.data.trials), through every stage
        assert cfg["chatreid_trials"] == {}
    assert "identity splits trained on (RegDB trial, CUHK03 classic split; score only these): none" in card
    assert "tasks trained in this stage" in card and all(f"`{t}`" in card for t in cfg["chatreid_tasks"])


def test_lora_stage3_merges_and_keeps_encoder_frozen(sft, data, three_stages, tiny_model_dir, tmp_path):
    out = tmp_path / "lora"
    assert sft.cli(_args(3, data, tiny_model_dir, out, "--previous_stage_checkpoint", str(three_stages / "s2"),
                         "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0")) == 0
    merged, s2 = _by_part(_weights(out)), _by_part(_weights(three_stages / "s2"))
    assert not any("lora" in k for part in merged.values() for k in part)  # plain weights, adapters merged
    assert all(torch.equal(merged["vision_encoder"][k], s2["vision_encoder"][k]) for k in s2["vision_encoder"])
    assert any(not torch.equal(merged["decoder"][k], s2["decoder"][k]) for k in s2["decoder"])
    from chatreid.model import load_model

    load_model(str(out / "final"))  # loads as an ordinary checkpoint


def test_push_success_and_failure_at_the_hub_client_boundary(sft, data, tiny_model_dir, tmp_path, monkeypatch, capsys):
    import httpx
    import huggingface_hub

    calls = []

    class FakeApi:
        fail = False

        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id))
            if FakeApi.fail:
                raise httpx.ConnectError("offline")

        def upload_folder(self, folder_path, repo_id, **kw):
            calls.append(("upload", repo_id, sorted(os.listdir(folder_path)),
                          (Path(folder_path) / "README.md").read_text()))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = tmp_path / "pushed"
    args = _args(1, data, tiny_model_dir, out, "--push_to_hub", "true", "--hub_model_id", "me/chatreid-s1")
    assert sft.cli(args) == 0
    assert calls[0] == ("create", "me/chatreid-s1")
    assert calls[1][0] == "upload" and "model.safetensors" in calls[1][2] and "config.json" in calls[1][2]
    card = calls[1][3]
    assert "base_model: " in card and "stage 1" in card and "learning_rate" in card and "training loss" in card

    FakeApi.fail = True
    out2 = tmp_path / "failed"
    capsys.readouterr()
    assert sft.cli(_args(1, data, tiny_model_dir, out2, "--push_to_hub", "true", "--hub_model_id", "me/x")) == 3
    err = capsys.readouterr().err
    assert "push to me/x failed" in err and str(out2 / "final") in err
    assert (out2 / "final" / "model.safetensors").is_file() and (out2 / "final" / "config.json").is_file()


@pytest.mark.parametrize("case,extra,match", [
    ("no dataset", {"--dataset_name": "DATA/absent"}, "no such local path (the Hub was not asked); make it with `chatreid build-data`"),
    ("no store", {"--image_store": "DATA/absent"}, "no such local path (the Hub was not asked); build one with `chatreid store build`"),
    ("stage 2 without stage 1", {"--stage": "2", "--previous_stage_checkpoint": ""}, "previous_stage_checkpoint"),
    ("stage 3 offline with an unknown Hub id", {"--previous_stage_checkpoint": "me/absent"}, "HF_HUB_OFFLINE"),
    ("stage 2 with a missing stage 1", {"--stage": "2", "--previous_stage_checkpoint": "DATA/absent"}, "no such folder"),
    ("stage 2 with an unfinished stage 1", {"--stage": "2", "--previous_stage_checkpoint": "DATA"}, "config.json"),
    ("stage 3 training the encoder", {"--stage": "3", "--previous_stage_checkpoint": "BASE",
                                      "--train_vision_encoder": "true"}, "frozen part"),
    ("stage 3 LoRA on the encoder", {"--stage": "3", "--previous_stage_checkpoint": "BASE", "--use_peft": "true",
                                     "--lora_target_modules": "qkv"}, "frozen"),
])
def test_clear_errors_before_training(sft, data, tiny_model_dir, tmp_path, capsys, case, extra, match):
    args = _args(3, data, tiny_model_dir, tmp_path / "run", "--previous_stage_checkpoint", str(tiny_model_dir))
    for key, value in extra.items():
        value = value.replace("DATA", str(tmp_path)).replace("BASE", str(tiny_model_dir))
        if key in args:
            args[args.index(key) + 1] = value
        else:
            args += [key, value]
    assert sft.cli(args) == 2, case
    assert match in capsys.readouterr().err, case
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("checkpoint-*"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the bf16 error is what a machine without a GPU meets")
def test_readme_command_on_a_cpu_machine_says_what_to_change(sft, capsys):
    """The README's stage-1 command as is (its config asks for bf16): one line, no traceback."""
    assert sft.cli(["--stage", "1", "--config", str(ROOT / "train/configs/stage1.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--use_cpu true --bf16 false" in err[0] and "GPU" in err[0], err


@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is not None, reason="liger-kernel is installed here")
def test_liger_without_the_package_is_one_line_before_training(sft, data, tiny_model_dir, tmp_path, capsys):
    assert sft.cli(_args(1, data, tiny_model_dir, tmp_path / "run", "--use_liger_kernel", "true")) == 2
    err = capsys.readouterr().err
    assert "needs the liger-kernel package" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("online", [False, True])
def test_stage2_default_previous_stage_is_named_missing_at_once(sft, data, tiny_model_dir, tmp_path, capsys,
                                                                 monkeypatch, online):
    """stage2.yaml's default previous stage, runs/stage1, in a checkout where stage 1 never ran."""
    import huggingface_hub

    def no_network(*a, **k):
        raise AssertionError("a local-looking path must not reach the network")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0" if online else "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # where the other stages' runs live; runs/stage1 itself is absent
    args = ["--config", str(ROOT / "train/configs/stage2.yaml"), *_args(2, data, tiny_model_dir, tmp_path / "s2")[2:]]
    started = time.monotonic()
    assert sft.cli(args) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert "'runs/stage1': no such folder" in err and "Traceback" not in err


def test_unreachable_hub_id_is_named_at_once(sft, data, tiny_model_dir, tmp_path, capsys, monkeypatch):
    """Online, a namespace/name that is no local folder gets one Hub request, no download retries."""
    import httpx2
    import huggingface_hub

    calls = []

    def unreachable(self, repo_id, **kw):  # what huggingface_hub raises on this machine, without network
        calls.append(repo_id)
        raise httpx2.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.chdir(tmp_path)  # no someone/ here: someone/stage1 is a Hub id
    args = _args(2, data, tiny_model_dir, tmp_path / "s2", "--previous_stage_checkpoint", "someone/stage1")
    started = time.monotonic()
    assert sft.cli(args) == 2
    assert time.monotonic() - started < 10 and calls == ["someone/stage1"]
    err = capsys.readouterr().err
    assert "'someone/stage1': no such local folder, and the Hub cannot be reached (ConnectError" in err


def test_hub_id_that_does_not_exist_is_named(sft, data, tiny_model_dir, tmp_path, capsys, monkeypatch):
    import httpx2
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    def not_found(self, repo_id, **kw):
        request = httpx2.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
        raise RepositoryNotFoundError(f"404 {repo_id}", response=httpx2.Response(404, request=request))

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", not_found)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.chdir(tmp_path)
    args = _args(2, data, tiny_model_dir, tmp_path / "s2", "--previous_stage_checkpoint", "me/no-such-model")
    assert sft.cli(args) == 2
    assert "'me/no-such-model': no such local folder, and no such model on the Hub" in capsys.readouterr().err


def test_rows_with_unknown_image_ids_fail_before_training(sft, data, tiny_model_dir, tmp_path, capsys):
    import datasets

    dsd = datasets.load_from_disk(str(data[1]))
    rows = dsd["train"].to_list()
    rows[3]["image_ids"] = ["synthpeds/not-in-store.png"]
    bad = tmp_path / "bad"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows), "validation": dsd["validation"]}).save_to_disk(bad)
    args = _args(1, {**data, 1: bad}, tiny_model_dir, tmp_path / "run")
    assert sft.cli(args) == 2
    assert "not-in-store.png" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def test_resume_from_a_copied_checkpoint_matches_the_uninterrupted_run(sft, data, tiny_model_dir, tmp_path):
    """Fast, in-process: resume from step 2 of 4 reproduces steps 3-4 exactly (weights and losses)."""
    import json
    import shutil

    extra = ["--previous_stage_checkpoint", str(tiny_model_dir), "--save_steps", "2", "--save_strategy", "steps"]
    ref, run = tmp_path / "ref", tmp_path / "resumed"
    assert sft.cli(_args(2, data, tiny_model_dir, ref, *extra, steps=4)) == 0
    shutil.copytree(ref / "checkpoint-2", run / "checkpoint-2")
    assert sft.cli(_args(2, data, tiny_model_dir, run, *extra, "--resume_from_checkpoint", "last", steps=4)) == 0
    a, b = _weights(ref), _weights(run)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    losses = lambda d: [h["loss"] for h in json.loads((d / "checkpoint-4" / "trainer_state.json").read_text())[  # noqa: E731
        "log_history"] if "loss" in h]
    assert losses(ref) == pytest.approx(losses(run), abs=1e-6) and len(losses(run)) == 4


@pytest.mark.slow
def test_resume_after_kill_ends_where_an_uninterrupted_run_does(sft, data, tiny_model_dir, tmp_path):
    # One thread here as in the killed subprocess (_env): float reductions depend on the thread
    # count, so a 2-thread reference would differ from it by more than the tolerance.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _resume_after_kill(sft, data, tiny_model_dir, tmp_path)
    finally:
        torch.set_num_threads(threads)


def _resume_after_kill(sft, data, tiny_model_dir, tmp_path):
    steps = ["--save_steps", "2", "--save_strategy", "steps"]
    ref = tmp_path / "ref"
    assert sft.cli(_args(2, data, tiny_model_dir, ref, "--previous_stage_checkpoint", str(tiny_model_dir),
                         *steps, steps=10)) == 0

    run = tmp_path / "killed"
    cmd = [sys.executable, str(SFT), *_args(2, data, tiny_model_dir, run, "--previous_stage_checkpoint",
                                            str(tiny_model_dir), *steps, steps=10)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while last_complete_checkpoint(str(run)) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the process group we started, and only it
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run / "final").exists()
    assert last_complete_checkpoint(str(run)) is not None

    assert sft.cli(_args(2, data, tiny_model_dir, run, "--previous_stage_checkpoint", str(tiny_model_dir),
                         *steps, "--resume_from_checkpoint", "last", steps=10)) == 0
    a, b = _weights(ref), _weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    import json

    state = lambda d: json.loads((d / "checkpoint-10" / "trainer_state.json").read_text())  # noqa: E731
    la = [h["loss"] for h in state(ref)["log_history"] if "loss" in h]
    lb = [h["loss"] for h in state(run)["log_history"] if "loss" in h]
    assert la[-1] == pytest.approx(lb[-1], abs=1e-4)


@pytest.mark.slow
def test_three_stages_with_accelerate_launch(data, tiny_model_dir, tmp_path):
    """The documented command, stage after stage: `accelerate launch --cpu --num_processes 1 train/sft.py ...`."""
    prev = None
    for stage in (1, 2, 3):
        out = tmp_path / f"s{stage}"
        extra = ["--previous_stage_checkpoint", str(prev)] if prev else []
        cmd = ["accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", str(SFT),
               *_args(stage, data, tiny_model_dir, out, *extra, "--dataloader_num_workers", "1")]
        res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        assert f"stage {stage}: model saved to" in res.stdout
        prev = out
    assert (tmp_path / "s3" / "final" / "model.safetensors").is_file()


# --- several processes on CPU (gloo) ---------------------------------------------------------------
# `accelerate launch --cpu --num_processes 2` starts ONE process (accelerate's simple launcher);
# `--multi_gpu --num_processes 2` with `--use_cpu true` starts two, which accelerate joins with
# gloo (MULTI_CPU). Same seed and global batch (2 processes x 2 = 1 x 4): the shards of a step are
# the halves of the one-process batch, and the Trainer divides by the tokens of all processes
# (average_tokens_across_devices), so the runs agree to float rounding.

MP_STEPS = ["--save_steps", "2", "--save_strategy", "steps"]

# Sleeps once a checkpoint is on disk, so that the test's kill lands after a save and before the end.
STALL = """import importlib.util, sys, time
from transformers import TrainerCallback
spec = importlib.util.spec_from_file_location("chatreid_train_sft", {sft!r})
sft = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = sft
spec.loader.exec_module(sft)
class Stall(TrainerCallback):
    def on_save(self, args, state, control, **kw):
        time.sleep(600)
sys.exit(sft.cli(sys.argv[1:], callbacks=[Stall()]))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(n, script, args, **popen):
    # a port of its own: the default 29500 may be held by another run on a shared machine
    multi = ["--multi_gpu", "--main_process_port", str(_free_port())] if n > 1 else ["--cpu"]
    cmd = ["accelerate", "launch", "--num_processes", str(n), "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1", *multi, str(script), *args]
    return subprocess.Popen(cmd, env=_env(), start_new_session=True, **popen)


def _mp_args(data, base, out, per_device, *extra):
    args = _args(2, data, base, out, "--previous_stage_checkpoint", str(base), *MP_STEPS, *extra, steps=4)
    args[args.index("--per_device_train_batch_size") + 1] = str(per_device)
    return args


def _losses(run):
    import json

    state = json.loads((run / "checkpoint-4" / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def _assert_same_run(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=2e-5), (k, (wa[k] - wb[k]).abs().max())
    assert _losses(a) == pytest.approx(_losses(b), abs=1e-4) and len(_losses(b)) == 4


@pytest.fixture(scope="module")
def one_process_run(data, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mp") / "one"
    proc = _launch(1, SFT, _mp_args(data, tiny_model_dir, out, 4), stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_two_processes_end_where_one_does(data, tiny_model_dir, one_process_run, tmp_path):
    out = tmp_path / "two"
    proc = _launch(2, SFT, _mp_args(data, tiny_model_dir, out, 2), stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert (out / "checkpoint-4" / "rng_state_1.pth").is_file()  # really two processes
    base = load_file(tiny_model_dir / "model.safetensors")
    moved = max((w - base[k]).abs().max().item() for k, w in _weights(one_process_run).items() if k in base)
    assert moved > 1e-3  # the tolerance below is far smaller than what training changed
    _assert_same_run(one_process_run, out)


@pytest.mark.slow
def test_two_processes_resume_after_a_kill(data, tiny_model_dir, one_process_run, tmp_path):
    run = tmp_path / "killed"
    stall = tmp_path / "stall_sft.py"
    stall.write_text(STALL.format(sft=str(SFT)))
    proc = _launch(2, stall, _mp_args(data, tiny_model_dir, run, 2), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while last_complete_checkpoint(str(run)) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers: the group we started
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert last_complete_checkpoint(str(run)).endswith("checkpoint-2") and not (run / "final").exists()

    proc = _launch(2, SFT, _mp_args(data, tiny_model_dir, run, 2, "--resume_from_checkpoint", "last"),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    _assert_same_run(one_process_run, run)


@pytest.mark.slow
def test_fsdp_config_on_cpu_says_it_runs_unsharded(data, tiny_model_dir, one_process_run, tmp_path):
    """accelerate applies FSDP on accelerators only; on CPUs the FSDP config trains as plain data
    parallel (same result as one process) and the script says so instead of pretending to shard."""
    out = tmp_path / "fsdp"
    cmd = ["accelerate", "launch", "--config_file", str(ROOT / "train/accelerate/fsdp.yaml"), "--num_processes", "2",
           "--mixed_precision", "no", str(SFT), *_mp_args(data, tiny_model_dir, out, 2)]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "asked for FSDP but accelerate runs MULTI_CPU here (no sharding)" in res.stderr
    _assert_same_run(one_process_run, out)


def test_accelerate_configs_parse():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {}
    for name in ["single_gpu", "multi_gpu", "zero2", "zero3", "fsdp"]:
        cfg = load_config_from_file(str(ROOT / "train" / "accelerate" / f"{name}.yaml"))
        kinds[name] = str(cfg.distributed_type)
    assert kinds["zero2"] == kinds["zero3"] == "DistributedType.DEEPSPEED"
    assert kinds["fsdp"] == "DistributedType.FSDP" and kinds["multi_gpu"] == "DistributedType.MULTI_GPU"

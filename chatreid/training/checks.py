"""Pre-flight checks: every user error a stage can hit is reported before any training starts.

Each check raises ``ValueError`` / ``FileNotFoundError`` with one line that names the problem and
what to do; ``train/sft.py`` prints it and exits 2 without loading a model where possible.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from chatreid.hub import check_local, load_hub_dataset, looks_local, offline
from chatreid.model.surgery import part_of
from chatreid.usage import first_line

REQUIRED_COLUMNS = ("messages", "image_ids")
# How to make the data a stage reads (the README's "Training" section runs it on a CPU).
MAKE_DATA = "make it with `chatreid build-data` (README, \"Training\")"


def load_instructions(name_or_path: str, *, revision: str | None = None):
    """The instruction ``DatasetDict`` from a ``save_to_disk`` folder or a Hub dataset id."""
    import datasets

    if os.path.isdir(name_or_path):
        try:
            ds = datasets.load_from_disk(name_or_path)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"instruction dataset {name_or_path}: not a saved dataset folder ({err})") from None
    elif check_local(name_or_path, "instruction dataset", hint=MAKE_DATA):
        raise FileNotFoundError(f"instruction dataset {name_or_path}: a file, not a saved dataset folder")
    else:
        ds = load_hub_dataset(name_or_path, "instruction dataset", revision=revision, error=FileNotFoundError)
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict({"train": ds})
    return ds


def check_rows(ds, store, where: str = "dataset", max_examples: int = 5) -> int:
    """Columns present, every image id in the store, placeholders == ids, an answer in every row.

    Vectorised over Arrow columns, so millions of rows check in seconds. Returns the row count.
    """
    import pyarrow.compute as pc

    missing_cols = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
    if missing_cols:
        raise ValueError(f"{where}: missing column(s) {missing_cols}; rows must follow docs/architecture.md")
    table = ds.select_columns(list(REQUIRED_COLUMNS)).with_format("arrow")[:]
    n = table.num_rows
    if n == 0:
        raise ValueError(f"{where}: no rows")
    ids_col = table.column("image_ids").combine_chunks()
    all_ids = ids_col.flatten().to_pylist()
    absent = sorted({i for i in set(all_ids) if i not in store})
    if absent:
        raise ValueError(f"{where}: {len(absent)} image id(s) are not in image store {getattr(store, 'source', '')}"
                         f", e.g. {absent[:max_examples]}; build the rows and the store from the same data")
    msgs = table.column("messages").combine_chunks()
    msg_row = pc.list_parent_indices(msgs).to_numpy()
    flat = msgs.flatten()
    content = flat.field("content")
    item_msg = pc.list_parent_indices(content).to_numpy()
    is_image = pc.equal(content.flatten().field("type"), "image").fill_null(False).to_numpy(zero_copy_only=False)
    n_placeholders = np.bincount(msg_row[item_msg[is_image]], minlength=n)
    n_ids = pc.list_value_length(ids_col).fill_null(0).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(n_placeholders != n_ids)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{where}: {bad.size} row(s) have image placeholders != image_ids, e.g. row {i} "
                         f"({n_placeholders[i]} placeholders, {n_ids[i]} ids)")
    is_answer = pc.equal(flat.field("role"), "assistant").fill_null(False).to_numpy(zero_copy_only=False)
    no_answer = np.flatnonzero(np.bincount(msg_row[is_answer], minlength=n) == 0)
    if no_answer.size:
        raise ValueError(f"{where}: {no_answer.size} row(s) have no assistant answer to train on, e.g. row "
                         f"{int(no_answer[0])}")
    return n


def resolve_checkpoint(path: str) -> str:
    """A stage's model folder: the folder itself, or its ``final/`` (what train/sft.py exports)."""
    p = Path(path)
    if (p / "final" / "config.json").is_file():
        return str(p / "final")
    return path


def explain_training_args_error(err: Exception) -> str:
    """One line for an error transformers' TrainingArguments raised while the options were parsed;
    the one a new user meets first (the configs ask for bf16, the machine has no GPU) says what to
    change."""
    import torch

    text = first_line(err)
    if "bf16" in text and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        return ("the config trains in bf16, which needs a GPU that supports it, and this machine has none: "
                "on a CPU add `--use_cpu true --bf16 false` (with `--dtype float32` for full-precision "
                f"weights), or run on a GPU (transformers: {text})")
    return text


def check_liger() -> None:
    """``--use_liger_kernel true`` needs the liger-kernel package (Triton kernels: a GPU)."""
    import importlib.util

    if importlib.util.find_spec("liger_kernel") is None:
        raise ValueError("--use_liger_kernel true needs the liger-kernel package (pip install liger-kernel) "
                         "and a GPU for its Triton kernels; drop the option to train without it")


def _hub_model_error(repo_id: str) -> str | None:
    """Why ``repo_id`` cannot be loaded from the Hub, or None when it can. One request, no retries:
    a missing or unreachable id is named at once, not after the download's five retries."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    def cached() -> bool:
        try:
            snapshot_download(repo_id, allow_patterns=["config.json"], local_files_only=True)
            return True
        except Exception:  # noqa: BLE001 - not in the cache, whatever the reason
            return False

    if offline():
        return None if cached() else "not a local folder, and HF_HUB_OFFLINE=1 forbids downloading it (not cached)"
    try:
        HfApi().model_info(repo_id, timeout=10)
    except GatedRepoError:
        return None  # it exists; access is the download's business
    except RepositoryNotFoundError:
        return "no such local folder, and no such model on the Hub (or a private one: log in first)"
    except Exception as err:  # noqa: BLE001 - connection errors come in many kinds
        if cached():
            return None
        return f"no such local folder, and the Hub cannot be reached ({type(err).__name__}: {first_line(err)})"
    return None


def check_base_model(base: str) -> None:
    """Stages 1 and 2 load the pretrained VLM: a local folder with its config.json, or a Hub id the
    Hub (or, offline, the cache) has. Checked before the data is read, in one request."""
    if check_local(base, "base model", hint="pass --base_model a local checkpoint folder"):
        if not (Path(base) / "config.json").is_file():
            raise FileNotFoundError(f"base model {base}: no config.json there; pass a checkpoint folder")
        return
    problem = _hub_model_error(base)
    if problem:
        raise FileNotFoundError(f"base model {base!r}: {problem}; pass --base_model a local checkpoint folder")


def check_previous_stage(stage: int, previous: str | None) -> str | None:
    """Stages 2 and 3 start from the previous stage's checkpoint; it must be given and exist."""
    if stage == 1:
        return None
    if not previous:
        raise ValueError(f"stage {stage} starts from the stage-{stage - 1} checkpoint: pass "
                         f"--previous_stage_checkpoint (the output_dir of the stage-{stage - 1} run, or a Hub id)")
    resolved = resolve_checkpoint(previous)
    if looks_local(previous):
        if not os.path.exists(previous):
            raise FileNotFoundError(f"previous stage checkpoint {previous!r}: no such folder; run stage {stage - 1} "
                                    f"with --output_dir {previous}, or pass --previous_stage_checkpoint")
        if not (Path(resolved) / "config.json").is_file():
            raise FileNotFoundError(f"previous stage checkpoint {previous!r}: no config.json there (nor in final/); "
                                    f"did the stage-{stage - 1} run finish?")
        return resolved
    problem = _hub_model_error(previous)
    if problem:
        raise FileNotFoundError(f"previous stage checkpoint {previous!r}: {problem}")
    return resolved


def linear_module_names(model) -> list[str]:
    import torch

    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def lora_targets(model, target_modules) -> list[str]:
    """The Linear modules a peft ``target_modules`` value selects, as peft matches them."""
    names = [n for n in linear_module_names(model) if n != "lm_head"]
    if target_modules is None:
        return []
    if isinstance(target_modules, str):
        if target_modules == "all-linear":
            return names
        # peft reads a string as a regex over full names; TRL turns a one-item list into a string,
        # so a bare module name ("qkv") is matched as a name suffix too
        return [n for n in names if re.fullmatch(target_modules, n) or n.endswith("." + target_modules)]
    targets = list(target_modules)
    return [n for n in names if any(n == t or n.endswith("." + t) for t in targets)]


def default_lora_targets(frozen: set[str], family=None) -> str:
    """A regex over the linear layers of the trainable parts: LoRA mirrors what full tuning trains.
    ``family``: the model's family (``chatreid.model.family_of(model)``); Qwen2-VL's by default."""
    from chatreid.model.families import QWEN2_VL

    return (family or QWEN2_VL).lora_targets(frozen)


def check_frozen_not_trained(model, frozen: set[str], peft_config=None) -> None:
    """Refuse a configuration that asks to train a part the stage keeps frozen."""
    if not frozen or peft_config is None:
        return
    hit = [n for n in lora_targets(model, peft_config.target_modules) if part_of(n, model) in frozen]
    for name in peft_config.modules_to_save or []:
        hit += [n for n, _ in model.named_modules() if (n == name or n.endswith("." + name)) and part_of(n + ".x", model) in frozen]
    if hit:
        raise ValueError(f"this stage keeps {sorted(frozen)} frozen, but the LoRA config would train "
                         f"{len(hit)} module(s) there, e.g. {hit[:3]}; drop them from lora_target_modules / "
                         f"lora_modules_to_save (or leave lora_target_modules unset for the stage default)")


def last_complete_checkpoint(output_dir: str) -> str | None:
    """Newest ``checkpoint-N`` that was fully written (a run killed mid-save leaves a partial one).

    The Trainer writes ``trainer_state.json`` after the weights, optimizer and RNG states, so a
    checkpoint whose state file parses is complete.
    """
    import json

    p = Path(output_dir)
    if not p.is_dir():
        return None
    found = []
    for d in p.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if not (m and d.is_dir() and (d / "trainer_state.json").is_file()):
            continue
        try:
            json.loads((d / "trainer_state.json").read_text())
        except ValueError:
            continue
        found.append((int(m.group(1)), str(d)))
    return max(found)[1] if found else None

"""The training run that ``train/sft.py`` wires: one stage of hierarchical progressive tuning
(ChatReID, paper section 3.3), from its parsed arguments to the exported (and pushed) checkpoint.

``preflight`` checks everything that needs no model; ``main`` loads (or resumes) the stage's model
with its surgery (``chatreid.model.surgery``), runs TRL's ``SFTTrainer`` with the stage's collator,
saves the final model atomically with its card and pushes it when asked; ``cli`` parses a command
line with ``TrlParser`` and turns user errors into one line and an exit code (2: bad input, 3: the
push failed, the checkpoint kept). The script is the command; callers in the same process (the demo
build, benchmarks) call ``cli`` here.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser, get_peft_config  # noqa: E402

from chatreid.data.store import ImageStore  # noqa: E402
from chatreid.hub import PushError, push_folder  # noqa: E402
from chatreid.model import DEFAULT_MODEL, family_of, load_model, load_processor  # noqa: E402
from chatreid.model.surgery import PARTS, frozen_parts, prepare_stage_model, set_trainable, trainable_summary  # noqa: E402
from chatreid.training import ReIDCollator  # noqa: E402
from chatreid.training import checks, hub  # noqa: E402

log = logging.getLogger("chatreid.train")



@dataclass
class ScriptArguments:
    stage: int = field(metadata={"help": "1, 2 or 3 (paper section 3.1)."})
    dataset_name: str = field(default=None, metadata={"help": "Instruction DatasetDict: save_to_disk folder or Hub id."})
    image_store: str = field(default=None, metadata={"help": "Image store: folder or Hub dataset id."})
    base_model: str | None = field(default=None, metadata={
        "help": f"Pretrained VLM (stage 1 start; stage 2's fresh decoder). Default: --model_name_or_path, "
                f"else {DEFAULT_MODEL}."})
    previous_stage_checkpoint: str | None = field(default=None, metadata={
        "help": "Output of the previous stage (its output_dir, its final/ folder, or a Hub id); stages 2 and 3."})
    dataset_train_split: str = "train"
    dataset_test_split: str = "validation"
    merger_from: str = field(default="stage1", metadata={"help": "Stage 2: take the merger from 'stage1' or 'base'."})
    freeze_merger: bool = field(default=False, metadata={"help": "Stage 3: freeze the merger with the encoder."})
    train_vision_encoder: bool | None = field(default=None, metadata={
        "help": "Leave unset: the stage decides (stage 3 freezes it). Setting it true on stage 3 is an error."})
    batched_vision_attention: bool = field(default=True, metadata={
        "help": "One attention call per group of equal-size images in the vision encoder (same outputs, faster)."})


def preflight(script_args, training_args, model_args):
    """Every check that needs no model: data, store, ids, previous stage, frozen-part requests."""
    if script_args.stage not in (1, 2, 3):
        raise ValueError(f"--stage must be 1, 2 or 3, not {script_args.stage}")
    if not script_args.dataset_name:
        raise ValueError("--dataset_name is required (an instruction dataset folder or Hub id)")
    if not script_args.image_store:
        raise ValueError("--image_store is required (the image store the rows' image_ids refer to)")
    if training_args.use_liger_kernel:
        checks.check_liger()
    frozen = frozen_parts(script_args.stage, freeze_merger=script_args.freeze_merger)
    if script_args.train_vision_encoder and "vision_encoder" in frozen:
        raise ValueError("stage 3 trains with the vision encoder frozen (paper section 3.3); "
                         "train_vision_encoder=true asks to train a frozen part")
    previous = checks.check_previous_stage(script_args.stage, script_args.previous_stage_checkpoint)
    if script_args.stage in (1, 2) and not training_args.resume_from_checkpoint:  # stage 3 starts from previous
        checks.check_base_model(script_args.base_model or model_args.model_name_or_path or DEFAULT_MODEL)
    data = checks.load_instructions(script_args.dataset_name)
    if script_args.dataset_train_split not in data:
        raise ValueError(f"{script_args.dataset_name}: no split {script_args.dataset_train_split!r} "
                         f"(has {list(data)})")
    store = ImageStore.load(script_args.image_store)
    splits = [script_args.dataset_train_split]
    if training_args.eval_strategy != "no" and script_args.dataset_test_split in data:
        splits.append(script_args.dataset_test_split)
    for split in splits:
        checks.check_rows(data[split], store, where=f"{script_args.dataset_name}[{split}]")
    return data, store, previous, frozen


@dataclass
class StageRun:
    """What one stage's run hands back: the exit code of ``main`` (0, or 3: the push failed), the
    exported folder and the last logged training loss (main process; None on the others)."""
    exit_code: int
    final_dir: str | None = None
    train_loss: float | None = None


def main(script_args, training_args, model_args, callbacks=None) -> int:
    """One stage: pre-flight, the stage's model, SFTTrainer, then the export (and push) on the main
    process. Returns 0, or 3 when the push failed (the checkpoint is kept)."""
    return train(script_args, training_args, model_args, callbacks).exit_code


def train(script_args, training_args, model_args, callbacks=None) -> StageRun:
    """``main``, for callers in the same process: its exit code with the exported folder and the
    final training loss."""
    data, store, previous, frozen = preflight(script_args, training_args, model_args)
    base = script_args.base_model or model_args.model_name_or_path or DEFAULT_MODEL
    peft_config = get_peft_config(model_args)
    resume = training_args.resume_from_checkpoint
    if resume in ("last", "true", "True"):
        resume = checks.last_complete_checkpoint(training_args.output_dir)
        log.info("resuming from %s", resume or "scratch (no complete checkpoint yet)")
    model = load_stage_model(script_args, training_args, model_args, base, previous, frozen,
                             resume=resume if peft_config is None else None)
    family = family_of(model)
    if peft_config is not None and model_args.lora_target_modules is None:
        peft_config.target_modules = checks.default_lora_targets(frozen, family)
    checks.check_frozen_not_trained(model, frozen, peft_config)
    if script_args.batched_vision_attention:
        family.enable_fast_attention(model)
    processor = load_processor(previous or base)

    # The Hub push happens after the local export, by us, so a failed push cannot cost the checkpoint.
    push, training_args.push_to_hub = training_args.push_to_hub, False
    training_args.remove_unused_columns = False  # the collator needs messages and image_ids
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    eval_data = data.get(script_args.dataset_test_split) if training_args.eval_strategy != "no" else None
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=data[script_args.dataset_train_split],
        eval_dataset=eval_data,
        processing_class=processor,
        data_collator=ReIDCollator(processor, store, script_args.stage, max_length=training_args.max_length),
        peft_config=peft_config,
        callbacks=callbacks,
    )
    _say_if_sharding_dropped(trainer.accelerator)
    result = trainer.train(resume_from_checkpoint=resume)
    eval_metrics = trainer.evaluate() if eval_data is not None else None

    # Under ZeRO-3 or FSDP each process holds a shard of the weights: gathering them is a collective
    # every process joins, before the main process writes them (unsharded runs save the model as is).
    full_state = None
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        full_state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    final_dir = None
    if trainer.accelerator.is_main_process:
        final_dir = export(trainer, model, processor, data, store, script_args, training_args, base=base,
                           previous=previous, peft_config=peft_config, result=result, eval_metrics=eval_metrics,
                           full_state=full_state)
    trainer.accelerator.wait_for_everyone()  # the other processes wait for the export, then all leave
    _leave_process_group()
    if final_dir is None:
        return StageRun(0)
    run = StageRun(0, final_dir, final_train_loss(trainer, result))
    if push:
        repo_id = training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))
        try:
            push_folder(final_dir, repo_id, what="checkpoint", private=training_args.hub_private_repo,
                        token=training_args.hub_token, commit_message=f"ChatReID stage {script_args.stage}")
        except PushError as err:
            print(f"push to {repo_id} failed; the checkpoint is kept at {final_dir} ({err})",
                  file=sys.stderr, flush=True)
            run.exit_code = 3
            return run
        log.info("pushed %s to https://huggingface.co/%s", final_dir, repo_id)
    return run


def final_train_loss(trainer, result) -> float:
    """The last logged training loss (the model card's), else the run's mean loss."""
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return losses[-1] if losses else result.training_loss


def load_stage_model(script_args, training_args, model_args, base, previous, frozen, resume=None):
    """The stage's model: ``resume`` (a full-weight checkpoint to continue) as saved, with the
    stage's frozen parts; else the stage's surgery on ``base`` and ``previous``."""
    load_kwargs = dict(dtype=model_args.dtype or "auto", attn_implementation=model_args.attn_implementation,
                       trust_remote_code=bool(getattr(training_args, "trust_remote_code", False)))
    if resume:
        # transformers' Trainer reloads checkpoint weights by raw key names, which for Qwen2-VL differ
        # between the saved format and the module tree, so it would silently keep the fresh weights:
        # we load the checkpoint through from_pretrained (which maps the names) and let the Trainer
        # restore optimizer, scheduler, RNG and data position.
        return set_trainable(load_model(resume, **load_kwargs), **{p: p not in frozen for p in PARTS})
    return prepare_stage_model(
        script_args.stage, base=base, previous=previous, merger_from=script_args.merger_from,
        freeze_merger=script_args.freeze_merger, revision=model_args.model_revision, **load_kwargs,
    )


def trained_trials(store, previous: str | None) -> dict | None:
    """The identity splits this checkpoint has trained on (``chatreid.data.trials``): the store's,
    and those of the previous stage; None when either is not recorded."""
    from transformers import PretrainedConfig

    from chatreid.data import trials

    own = store.trials()
    if previous is None:
        return None if own is None else trials.merge(own)
    before = PretrainedConfig.get_config_dict(previous)[0].get("chatreid_trials")
    return None if own is None or before is None else trials.merge(before, own)


def export(trainer, model, processor, data, store, script_args, training_args, *, base, previous, peft_config, result,
           eval_metrics, full_state) -> str:
    """Main process: the trained ``model`` as plain weights (LoRA merged), with what it was trained on
    in its config and a model card, saved atomically to ``output_dir/final``; returns that folder."""
    final_model = trainer.model
    if peft_config is not None:  # export plain weights: the next stage and users load them directly
        final_model = final_model.merge_and_unload()
    # what this stage trained travels with the weights: the engine warns when it is asked to
    # score with a prompt the final stage never saw (ReIDEngine.untrained_scoring)
    train_rows = data[script_args.dataset_train_split]
    if "task" in train_rows.column_names:
        final_model.config.chatreid_tasks = sorted(set(train_rows["task"]))
    final_model.config.chatreid_stage = script_args.stage
    # the identity splits (RegDB trial, CUHK03 classic split) it saw: the evaluation refuses to
    # score another split's test people with it (chatreid.data.trials)
    final_model.config.chatreid_trials = trained_trials(store, previous)
    card = hub.model_card(
        stage=script_args.stage, base=base, previous=previous, dataset=script_args.dataset_name,
        store=script_args.image_store, repo_id=training_args.hub_model_id,
        hyperparameters={k: v for k, v in training_args.to_dict().items() if not k.startswith(("hub_token", "push"))},
        train_loss=final_train_loss(trainer, result), eval_metrics=eval_metrics,
        trainable=trainable_summary(model if peft_config is None else final_model),
        lora=peft_config.to_dict() if peft_config is not None else None,
        tasks=getattr(final_model.config, "chatreid_tasks", None), trials=final_model.config.chatreid_trials,
    )
    final_dir = hub.save_atomically(final_model, processor, os.path.join(training_args.output_dir, "final"), card,
                                    state_dict=full_state if peft_config is None else None)
    print(f"stage {script_args.stage}: model saved to {final_dir}", flush=True)
    return final_dir


def _say_if_sharding_dropped(accelerator) -> None:
    """accelerate (1.15) turns FSDP on only for accelerator devices: launched with an FSDP config on
    CPUs, the run is plain data parallel with every weight on every process. Say so, once."""
    for kind in ("FSDP", "DEEPSPEED"):
        asked = os.environ.get(f"ACCELERATE_USE_{kind}", "false").lower() == "true"
        if asked and accelerator.distributed_type.name != kind and accelerator.is_main_process:
            print(f"train/sft.py: warning: the launch asked for {kind} but accelerate runs "
                  f"{accelerator.distributed_type.name} here (no sharding): it applies {kind} on accelerators only",
                  file=sys.stderr, flush=True)


def _leave_process_group() -> None:
    """End the process group before the interpreter exits: a process that exits while gloo's
    threads still run can abort ("terminate called without an active exception", exit -6)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def stage_arguments(config: str | os.PathLike, **fields):
    """(script_args, training_args, model_args) of a run from the YAML ``config`` with ``fields``
    (typed values, by option name) over it: what ``cli(["--config", config, "--NAME", VALUE ...])``
    parses, for callers in the same process (the demo build). An unknown name is an error."""
    import yaml

    parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig))
    with open(config) as f:
        values = yaml.safe_load(f)
    if not isinstance(values, dict) or "env" in values:
        raise ValueError(f"{config}: expected a YAML mapping of options (and no env: section)")
    unknown = parser.set_defaults_with_config(**{**values, **fields})
    if unknown:
        raise ValueError(f"{config}: unknown options {unknown}")
    return parser.parse_args_into_dataclasses(args=[])


def cli(argv=None, callbacks=None, parser: TrlParser | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv``) and run the stage; returns the exit code.
    ``callbacks``: extra ``transformers.TrainerCallback``s, for callers that run training in their
    own process (the demo build measures held-out learning curves this way). ``parser``: the
    script's ``TrlParser((ScriptArguments, SFTConfig, ModelConfig))`` (the default)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = parser or TrlParser((ScriptArguments, SFTConfig, ModelConfig))
    try:
        script_args, training_args, model_args = parser.parse_args_and_config(args=argv)
    except ValueError as err:  # TrainingArguments' own checks of the options (one line, no traceback)
        print(f"train/sft.py: error: {checks.explain_training_args_error(err)}", file=sys.stderr, flush=True)
        return 2
    try:
        return main(script_args, training_args, model_args, callbacks)
    except (ValueError, OSError) as err:  # user errors: one line, no traceback
        print(f"train/sft.py: error: {err}", file=sys.stderr, flush=True)
        return 2

"""The demo build's driver: every step of ``python -m chatreid.demo build`` (see ``chatreid.demo``)
through the functions the project's commands call, with typed arguments and their returned values:
the SynthPeds world writer, the store and instruction builders, ``chatreid.training.sft`` for the
stages, ``chatreid.evaluation.harness`` for the figures; then the atomic install of the demo model
and the report.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from chatreid import paths
from chatreid.atomic import install_dir, write_text
from chatreid.demo.config import CHAINS, LAYOUTS, PROTOCOL, DemoConfig, seed_label
from chatreid.demo.report import model_card, write_report
from chatreid.demo.separation import feature_separation, scored_pairs, yes_separation

DEFAULT_OUT = paths.demo_model_dir()
DEFAULT_REPORT = paths.docs_dir() / "demo-report.md"
DEFAULT_WORK = paths.project_path("runs", "demo")


# the steps
class Timer:
    """Wall time of each named step, in order (for the report and docs/benchmarks.md)."""

    def __init__(self):
        self.steps: dict[str, float] = {}
        self.t0 = time.time()

    @contextlib.contextmanager
    def __call__(self, name: str):
        print(f"[demo] {name} ...", flush=True)
        t = time.time()
        yield
        self.steps[name] = round(time.time() - t, 1)
        print(f"[demo] {name}: {self.steps[name]} s", flush=True)

    @property
    def total(self) -> float:
        return round(time.time() - self.t0, 1)


# Each purpose draws its worlds from its own seed range, so no person is in two of them; the
# evaluation worlds' folder is not work/eval, where eval/run.py writes its results.
WORLD_SEEDS = {"synth": 0, "pretrain": 1_000_000, "eval": 2_000_000, "text_prefilter": 3_000_000}
WORLD_DIRS = {"synth": "synth", "pretrain": "pretrain", "eval": "eval_worlds", "text_prefilter": "text_prefilter_world"}


def make_world(cfg: DemoConfig, work: Path, purpose: str = "synth") -> dict[str, Path]:
    """One SynthPeds world per layout: ``synth`` (the stage data), ``pretrain`` (comparison
    pretraining), ``eval`` (the fresh worlds every model is measured on) or ``text_prefilter``
    (pedes only: the text pre-filter's training world)."""
    from chatreid.data.synthpeds.layouts import generate

    text_ids = {"pedes": cfg.text_prefilter_ids} if cfg.text_prefilter_ids else {}
    ids, per_id = {"synth": (cfg.ids, cfg.images_per_id), "pretrain": (cfg.pretrain_ids, cfg.pretrain_images_per_id),
                   "eval": (cfg.eval_ids, None), "text_prefilter": (text_ids, None)}[purpose]
    roots = {}
    for layout in LAYOUTS:
        if layout not in ids:
            continue
        out = work / WORLD_DIRS[purpose] / layout
        generate(layout, out, ids[layout], seed=_world_seed(cfg, purpose, layout),
                 images_per_id=per_id[layout] if per_id else None, overwrite=True, progress=True)
        roots[layout] = out
    return roots


def _world_seed(cfg: DemoConfig, purpose: str, layout: str) -> int:
    return WORLD_SEEDS[purpose] + cfg.seed * 1000 + 101 * (LAYOUTS.index(layout) + 1)


def evaluation_ceilings(cfg: DemoConfig, roots: dict[str, Path]) -> dict:
    """Per evaluation world, the ground-truth ceilings and chance (``chatreid.demo.ceilings``)
    under the protocol and trials its evaluation used."""
    from chatreid.demo.ceilings import world_ceilings

    return {layout: world_ceilings(root, PROTOCOL.get(layout), trials=cfg.sysu_trials if layout == "sysu" else None)
            for layout, root in roots.items()}


def make_store(roots: dict[str, Path], out: Path) -> Path:
    from chatreid.data.builder import build

    # distinct dataset names: image ids stay unique across layouts
    build([("synthpeds", str(root), {"dataset": f"synthpeds_{layout}"}) for layout, root in roots.items()],
          out, overwrite=True)
    return out


def make_instructions(cfg: DemoConfig, store: Path, work: Path) -> dict[int, Path]:
    from chatreid.instructions import BuildConfig, build, parse_mix

    data = {}
    for stage in (1, 2, 3):
        out = work / "data" / f"stage{stage}"
        extra = {"gallery": tuple(cfg.gallery2)} if stage == 2 else {"reid_gallery": tuple(cfg.gallery3)} if stage == 3 else {}
        mix = {2: cfg.mix2, 3: cfg.mix3}.get(stage)
        build(str(store), str(out), BuildConfig(stage=stage, size=cfg.rows[stage], seed=cfg.seed,
                                                mix=parse_mix(stage, list(mix) if mix else None), val_fraction=0.05,
                                                lookalike_negatives=cfg.lookalike_negatives if stage > 1 else 0.0,
                                                **extra),
              overwrite=True)
        data[stage] = out
    return data


def make_base_model(cfg: DemoConfig, out: Path) -> Path:
    """A randomly initialised Qwen2-VL: the tiny factory's tokenizer and config, scaled up, with
    ``cfg.patch``-pixel patches; the image processor's pixel cap (``cfg.max_pixels``) brings every
    crop, and stage 1's upsizing to 256x128, back to the same grid: on synthetic crops more pixels
    would only cost tokens."""
    from chatreid.model.families import default_family
    from chatreid.model.tiny import build_tiny_tokenizer

    family = default_family()
    tokenizer = build_tiny_tokenizer(seed=cfg.seed)
    config = family.tiny_config(tokenizer, hidden_size=cfg.hidden, num_attention_heads=cfg.heads,
                                num_hidden_layers=cfg.layers, num_key_value_heads=cfg.kv_heads,
                                vision_depth=cfg.vision_depth, vision_embed_dim=cfg.vision_embed)
    config.vision_config.patch_size = cfg.patch
    config.vision_config.num_heads = cfg.vision_heads
    factor = cfg.patch * 2  # the 2x2 merger
    return family.build_tiny(out, seed=cfg.seed, tokenizer=tokenizer, config=config,
                             image_settings=dict(patch_size=cfg.patch, min_pixels=factor * factor,
                                                 max_pixels=cfg.max_pixels))


def pretrain_base(cfg: DemoConfig, base: Path, store: Path, probe, out: Path) -> tuple[Path, dict]:
    """The comparison pretraining (``chatreid.training.compare``) of the random ``base`` on the
    pretraining worlds (every split: they are only ever trained on); returns the pretrained base and
    its learning curve."""
    from chatreid.training.compare import CompareConfig

    compare = CompareConfig(steps=cfg.pretrain_steps, batch=cfg.pretrain_batch, lr=cfg.pretrain_lr,
                            describe=cfg.pretrain_describe, hard_negatives=cfg.pretrain_hard_negatives,
                            match=cfg.pretrain_match, grey=cfg.pretrain_grey, mode=cfg.pretrain_mode,
                            eval_every=2 * cfg.curve_every, seed=cfg.seed)
    return out, compare_train(base, store, compare, probe, out, splits=("train", "query", "gallery"))


def compare_train(start: Path, store: Path, compare, probe, out: Path, splits: tuple[str, ...]) -> dict:
    """``chatreid.training.compare``'s curriculum (``compare``, a CompareConfig) on the model folder
    ``start`` with pairs from ``splits`` of ``store``; writes the trained model to ``out`` (start's
    tokenizer, processor and card with the new weights) and returns its learning curve."""
    import torch

    from chatreid.data.store import ImageStore
    from chatreid.model import load_model_and_processor
    from chatreid.training.compare import pretrain

    model, processor = load_model_and_processor(str(start), dtype=torch.float32)
    if torch.cuda.is_available():
        model = model.cuda()
    result = pretrain(model, processor, ImageStore.load(str(store)), compare, probe, splits=splits)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(start, out)  # tokenizer, processor, chat template; the weights are replaced next
    model.cpu().save_pretrained(out, safe_serialization=True)
    return result


def stage2_curriculum(cfg: DemoConfig, store: Path, start: Path, probe, out: Path, seed: int) -> dict:
    """Stage 2's comparison curriculum (``cfg.stage2_compare_steps``) on the stage-2 model ``start``:
    fresh pairs of the stage data's training people every step, up to the camera level (another
    camera, other clothes, infrared against visible), with caption matching beside them."""
    from chatreid.training.compare import CompareConfig

    compare = CompareConfig(steps=cfg.stage2_compare_steps, batch=cfg.pretrain_batch, lr=cfg.stage2_compare_lr,
                            describe=cfg.pretrain_describe, match=cfg.stage2_compare_match, mode="reid",
                            hard_negatives=0.5, hard_positives=cfg.stage2_hard_positives,
                            eval_every=cfg.curve_every, seed=seed)
    return compare_train(start, store, compare, probe, out, splits=("train",))


def heldout_probe(cfg: DemoConfig, eval_store: Path):
    """Same- and other-identity pairs of the evaluation worlds' held-out people (image layouts),
    on which every learning curve of the build is measured."""
    from chatreid.data.store import ImageStore
    from chatreid.training.compare import PairProbe

    groups = {l: f"synthpeds_{l}" for l in LAYOUTS if l != "pedes" and l in cfg.eval_ids}
    return PairProbe.sample(ImageStore.load(str(eval_store)), groups, n=cfg.curve_pairs, seed=cfg.seed)


def _sft():
    """The training run, ``chatreid.training.sft`` (imported when a stage trains: it loads TRL)."""
    from chatreid.training import sft

    return sft


def set_pixel_cap(model_dir: Path, max_pixels: int) -> None:
    """Set the image processor's pixel cap of the model folder ``model_dir`` (processor_config.json)."""
    path = Path(model_dir) / "processor_config.json"
    config = json.loads(path.read_text())
    config["image_processor"]["size"]["longest_edge"] = int(max_pixels)
    write_text(path, json.dumps(config, indent=2) + "\n")


def train_stage(sft, cfg: DemoConfig, stage: int, data: dict, store: Path, base: Path, prev: Path | None,
                out: Path, seed: int = 0, callbacks=None) -> tuple[Path, float | None]:
    """One stage through ``chatreid.training.sft`` (what train/sft.py runs), with the stage's YAML
    under the build's settings; returns the exported model and its last logged training loss."""
    import torch

    if stage == 2 and cfg.stage2_decoder == "stage1":
        base = prev  # the surgery's "fresh decoder" then comes from the stage-1 model itself
    start = base
    if stage == 1 and cfg.stage1_max_pixels not in (0, cfg.max_pixels):
        # the paper reads stage 1 at a higher resolution than stages 2-3: the same weights under
        # a larger pixel cap (the vision tower's 2-D rotary positions take any grid)
        start = out.parent / f"{out.name}_start"
        if start.exists():
            shutil.rmtree(start)
        shutil.copytree(base, start)
        set_pixel_cap(start, cfg.stage1_max_pixels)
    # fp32 everywhere, so a GPU run learns what the CPU run learns (it only runs faster)
    config = paths.require(paths.train_configs_dir() / f"stage{stage}.yaml", f"the stage {stage} training config")
    args = sft.stage_arguments(
        config, stage=stage, base_model=str(start), dataset_name=str(data[stage]), image_store=str(store),
        output_dir=str(out), use_cpu=not torch.cuda.is_available(), bf16=False, dtype="float32",
        max_steps=cfg.steps[stage], per_device_train_batch_size=cfg.batch, gradient_accumulation_steps=1,
        learning_rate=cfg.lr[stage], warmup_steps=0.05, lr_scheduler_type=cfg.schedule, logging_steps=10,
        save_strategy="no", dataloader_num_workers=0, dataloader_persistent_workers=False, report_to="none",
        seed=seed, disable_tqdm=True,
        previous_stage_checkpoint=str(prev) if prev is not None else None)
    run = sft.train(*args, callbacks=callbacks)
    if run.exit_code:
        raise RuntimeError(f"stage {stage} -> {out} failed with exit code {run.exit_code}")
    if start != base:  # stages 2-3 take the processor of their predecessor: back to the build's cap
        set_pixel_cap(out / "final", cfg.max_pixels)
        shutil.rmtree(start)
    return out / "final", run.train_loss


def final_loss(final_dir: Path) -> float | None:
    """The last logged training loss, from the model card train/sft.py writes: only for the report
    of a build whose summary predates its recorded losses (``python -m chatreid.demo report``)."""
    card = Path(final_dir) / "README.md"
    for line in card.read_text().splitlines() if card.is_file() else []:
        if "training loss" in line:
            try:
                return float(line.rsplit(":", 1)[1])
            except ValueError:
                return None
    return None


def train_chains(cfg: DemoConfig, data: dict, store: Path, base: Path, work: Path, timer: Timer,
                 probe=None) -> tuple[dict[str, Path], dict[str, list], dict[str, float | None]]:
    """Every chain of CHAINS for each of ``cfg.seeds`` stage seeds, sharing prefixes (1+2 is the
    first half of 1+2+3), all from ``base``. Returns the models by label (:func:`seed_label`),
    with ``probe`` each trained stage's held-out learning curve by run name (``s12`` is stage 2 of
    the 1+2 prefix), and each run's final training loss by run name."""
    from chatreid.model import load_processor
    from chatreid.training.compare import ProbeCallback

    sft = _sft()
    processor = load_processor(str(base)) if probe is not None else None
    chains = {k: v for k, v in CHAINS.items()
              if (cfg.ablation or k not in ("2+3", "3")) and (cfg.diagnostic or k != "1+2")}
    models, curves, losses = {}, {}, {}
    for k in range(cfg.seeds):
        seed = cfg.seed + cfg.stage_seed + k
        done: dict[tuple, Path] = {(): base}
        for label, chain in sorted(chains.items(), key=lambda kv: -len(kv[1])):
            for i, stage in enumerate(chain):
                key = chain[:i + 1]
                if key in done:
                    continue
                name = "s" + "".join(map(str, key)) + (f"@{k}" if k else "")
                callback = ProbeCallback(probe, processor, cfg.curve_every) if probe is not None else None
                with timer(f"train stage {stage} ({'+'.join(map(str, key))}, seed {seed})"):
                    done[key], losses[name] = train_stage(
                        sft, cfg, stage, data, store, base, None if stage == 1 else done[chain[:i]],
                        work / "runs" / name, seed=seed, callbacks=[callback] if callback else None)
                if callback is not None:
                    curves[name] = callback.curve
                if stage == 2 and cfg.stage2_compare_steps:
                    with timer(f"stage 2 comparison curriculum ({'+'.join(map(str, key))}, seed {seed})"):
                        result = stage2_curriculum(cfg, store, done[key], probe, work / "runs" / name / "compared",
                                                   seed=seed)
                    done[key] = work / "runs" / name / "compared"
                    rows_steps = curves[name][-1]["step"] if curves.get(name) else 0
                    curves[name] = curves.get(name, []) + [{**p, "step": rows_steps + p["step"]}
                                                           for p in result["curve"][1:]]
            models[seed_label(label, k)] = done[chain]
    return models, curves, dict(sorted(losses.items()))


def evaluate(cfg: DemoConfig, models: dict[str, Path], roots: dict[str, Path], work: Path,
             timer: Timer, text_prefilter: Path | None = None) -> dict:
    """Per layout: every model (VLM re-ranking the pre-filter's top-k), then the pre-filter alone and
    the colour histogram. Text queries: with ``text_prefilter``, the VLM re-ranks its head (its
    config's ``head``) and it is the pre-filter alone; without one, VLM rows only."""
    from chatreid.evaluation.arguments import parse_args
    from chatreid.evaluation.harness import evaluate_reid

    results: dict[str, dict] = {}
    demo = str(models["1+2+3"])
    for layout, root in roots.items():
        text = layout == "pedes"
        prefilter = f"{cfg.prefilter}+{text_prefilter}" if text and text_prefilter else cfg.prefilter
        base_args = dict(dataset=f"synthpeds:{root}", vis=0, batch_size=32, prefilter=prefilter,
                         trials=cfg.sysu_trials if layout == "sysu" else None, protocol=PROTOCOL.get(layout))
        vlm = dict(model=[str(p) for p in models.values()], label=list(models),
                   top_k=cfg.top_k if not text else None)
        baseline = dict(model=[demo], top_k=1)
        runs = [("vlm", vlm)]
        if not text or text_prefilter:
            runs += [("prefilter", {**baseline, "label": ["pre-filter"]})]
        if not text and cfg.prefilter != "color_histogram":
            runs += [("color_histogram", {**baseline, "label": ["colour histogram"], "prefilter": "color_histogram"})]
        results[layout] = {}
        for name, extra in runs:
            out = work / "eval" / layout / name
            if out.exists():
                shutil.rmtree(out)  # a fresh run: eval/run.py would otherwise resume from old rankings
            with timer(f"eval {layout} ({name})"):
                rc, evaluated = evaluate_reid(parse_args(**{**base_args, **extra, "out": str(out)}))
            if rc:
                raise RuntimeError(f"eval/run.py on {layout} ({name}) failed with exit code {rc}")
            for res in evaluated:
                results[layout][res["label"]] = {"rank1": res["mean"]["rank1"], "mAP": res["mean"]["mAP"],
                                                 "mINP": res["mean"]["mINP"], "queries": res["num_queries"],
                                                 "gallery": res["num_gallery"][0], "protocol": res["protocol"],
                                                 "top_k": res["top_k"] or res.get("text_head"),
                                                 "prefilter": res["prefilter"]}
    return results


def attribute_figures(cfg: DemoConfig, work: Path, models: dict[str, Path], world: Path) -> dict:
    """Stage 1's attribute answers and descriptions on held-out images of ``world``
    (``chatreid.demo.attributes``), for the stage-1 model (seed 0) and the demo model."""
    from chatreid.demo.attributes import attribute_accuracy

    chosen = {"stage 1": work / "runs" / "s1" / "final", "1+2+3": models["1+2+3"]}
    return {label: attribute_accuracy(path, world, n_images=cfg.attribute_images, seed=cfg.seed)
            for label, path in chosen.items() if path.is_dir()}


def param_count(path: Path) -> int:
    from safetensors import safe_open

    n = 0
    for f in path.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            n += sum(_prod(st.get_slice(k).get_shape()) for k in st.keys())
    return n


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def install(src: Path, out: Path, card: str, extra: dict, text_prefilter: Path | None = None) -> None:
    """Copy the model (and the text pre-filter it ships, into its ``text-prefilter/``) to ``out``
    atomically: built beside it, then swapped in by rename, so a crash leaves either the old model
    or the new one, never half of one."""
    from chatreid.retrieval.prefilter import SHIPPED_TEXT_PREFILTER

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the installed model is an ordinary folder
    try:
        for f in src.iterdir():
            if f.is_file() and f.name != "README.md":
                shutil.copyfile(f, tmp / f.name)  # plain 0644-style files, whatever the source's mode
        (tmp / "README.md").write_text(card)
        (tmp / "demo_build.json").write_text(json.dumps(extra, indent=1, default=str))
        if text_prefilter is not None:
            shutil.copytree(text_prefilter, tmp / SHIPPED_TEXT_PREFILTER, copy_function=shutil.copyfile)
        install_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


PRETRAINING_FIELDS = ("seed", "hidden", "layers", "heads", "kv_heads", "vision_depth", "vision_embed",
                      "vision_heads", "patch", "max_pixels", "pretrain_ids", "pretrain_images_per_id",
                      "pretrain_steps", "pretrain_batch", "pretrain_lr", "pretrain_describe",
                      "pretrain_hard_negatives", "pretrain_mode", "pretrain_match", "pretrain_grey", "eval_ids",
                      "curve_pairs", "curve_every")


def record_pretraining(cfg: DemoConfig, work: Path, pretraining: dict) -> None:
    """Note the finished pretraining beside base_pretrained/ at once, so that a build stopped in
    its stages (or one whose stage recipe is changed) can still reuse the slowest step."""
    write_text(work / "pretraining.json",
               json.dumps({"config": cfg.to_dict(), "pretraining": pretraining}, indent=1, default=str))


def reusable_pretraining(cfg: DemoConfig, work: Path) -> dict | None:
    """The pretraining of an earlier build in ``work`` (its pretraining.json, or the summary.json of
    a build from before that file existed, and base_pretrained/), when every field it depends on is
    the same as in ``cfg``; else None."""
    record, folder = work / "pretraining.json", work / "base_pretrained"
    if not record.is_file():
        record = work / "summary.json"
    if not (record.is_file() and (folder / "model.safetensors").is_file()):
        return None
    done = json.loads(record.read_text())
    ours = json.loads(json.dumps(cfg.to_dict(), default=str))
    # a field newer than that build had its default value there
    theirs = {**json.loads(json.dumps(DemoConfig("defaults").to_dict(), default=str)), **done["config"]}
    if done.get("pretraining") and all(theirs[f] == ours[f] for f in PRETRAINING_FIELDS):
        return done["pretraining"]
    return None


def build(cfg: DemoConfig, out: Path = DEFAULT_OUT, work: Path = DEFAULT_WORK,
          report_path: Path | None = DEFAULT_REPORT, reuse_pretraining: bool = False) -> dict:
    """The whole build; ``reuse_pretraining``: take the pretrained base of an earlier build in
    ``work`` whose pretraining had the same configuration (to try another stage recipe on it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for the Hub
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    work = Path(work)
    pretraining = reusable_pretraining(cfg, work) if reuse_pretraining else None  # before any work
    if reuse_pretraining and pretraining is None:
        raise ValueError(f"--reuse-pretraining: {work} holds no finished pretraining with this configuration")
    load_start = _load()
    timer = Timer()
    with timer("synth (stage data, pretraining and evaluation worlds)"):
        roots = make_world(cfg, work, "synth")
        eval_roots = make_world(cfg, work, "eval")
        pre_roots = make_world(cfg, work, "pretrain") if cfg.pretrain_steps and pretraining is None else {}
        text_root = make_world(cfg, work, "text_prefilter").get("pedes")
    with timer("stores"):
        store = make_store(roots, work / "store")
        eval_store = make_store(eval_roots, work / "eval_store")
        pre_store = make_store(pre_roots, work / "pretrain_store") if pre_roots else None
    with timer("instructions (stages 1-3)"):
        data = make_instructions(cfg, store, work)
    probe = heldout_probe(cfg, eval_store)
    with timer("base model"):
        base = make_base_model(cfg, work / "base")
    if pretraining is not None:
        base = work / "base_pretrained"
        print(f"[demo] comparison pretraining: reused from {base}", flush=True)
    elif pre_store is not None:
        (work / "pretraining.json").unlink(missing_ok=True)  # it describes the base about to be replaced
        with timer("comparison pretraining"):
            base, pretraining = pretrain_base(cfg, base, pre_store, probe, work / "base_pretrained")
        record_pretraining(cfg, work, pretraining)
    text_prefilter = None
    if text_root is not None:
        from chatreid.demo.text_prefilter import make_text_prefilter

        with timer("text pre-filter (Re-ID baseline and dual encoder)"):
            text_prefilter = make_text_prefilter(text_root, work, cfg.text_prefilter_epochs, cfg.seed)
        text_prefilter["world_seed"] = _world_seed(cfg, "text_prefilter", "pedes")
    models, curves, losses = train_chains(cfg, data, store, base, work, timer, probe)
    results = evaluate(cfg, models, eval_roots, work, timer,
                       Path(text_prefilter["folder"]) if text_prefilter else None)
    with timer("ground-truth ceilings and chance"):
        ceilings = evaluation_ceilings(cfg, eval_roots)
    attributes = None
    if cfg.attribute_images and "market" in eval_roots:
        with timer("attributes (stage 1 and the demo model)"):
            attributes = attribute_figures(cfg, work, models, eval_roots["market"])
    params = param_count(models["1+2+3"])
    pairs = scored_pairs(work, eval_roots, cfg)
    main_models = {k: v for k, v in models.items() if "@" not in k}  # the features of seed 0's chains
    summary = {"losses": losses, "separation": yes_separation(pairs), "pretraining": pretraining,
               "curves": curves, "feature_separation": feature_separation(pairs, main_models), "config": cfg.to_dict(),
               "results": results, "steps_s": timer.steps, "total_s": timer.total,
               "load_start": load_start, "load_end": _load(), "params": params, "ceilings": ceilings,
               "text_prefilter": text_prefilter, "attributes": attributes}
    install(models["1+2+3"], out, model_card(cfg, params, results), summary,
            Path(text_prefilter["folder"]) if text_prefilter else None)
    if report_path is not None:
        write_report(json.loads(json.dumps(summary, default=str)), report_path)
    (work / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"[demo] done in {timer.total} s: model -> {out}" + (f", report -> {report_path}" if report_path else ""))
    return summary

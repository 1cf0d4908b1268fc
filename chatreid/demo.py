"""The embedded demo: the whole method in miniature on SynthPeds, from scratch, on CPUs.

    python -m chatreid.demo build [--out models/chatreid-demo] [--config full|ship|small] [--work runs/demo]
                                  [--set FIELD=VALUE ...]   (any DemoConfig field: steps.1=1500)

One command, every step through the project's own entry points:

1. ``chatreid synth``: SynthPeds worlds, one per layout (market, ltcc, sysu, pedes), for three
   purposes drawn from separate seed ranges: the stage data, the comparison pretraining (market,
   ltcc, sysu) and the evaluation. No person is in two of them, so every model is measured on
   people that no step of the build trained or pretrained on.
2. ``chatreid store build``: one image store per purpose.
3. ``chatreid build-data``: stage 1, 2 and 3 instruction rows from the stage-data store.
4. A randomly initialised Qwen2-VL (``chatreid.model.tiny``'s tokenizer and config, with more
   capacity and 16x16 patches; crops are read at 64x32: 4x2 patches, 2 tokens after the merger).
5. The comparison pretraining (``chatreid.training.compare``): the miniature's stand-in for the
   pretrained VLM the paper starts from; every chain below starts from its result.
6. ``train/sft.py`` (its ``cli``, in this process): stages 1 -> 2 -> 3 (the demo model), and for
   the Table 4 ablation stage 3 alone and stages 2 -> 3, for each stage seed, with held-out
   learning curves recorded by a callback.
7. ``eval/run.py`` (its ``main``): Rank-1 / mAP on the evaluation worlds' held-out identities for
   every model, the pre-filter alone and the colour-histogram baseline.
8. The demo model is copied atomically to ``--out`` with its model card (whose first paragraph
   is the app's banner), and ``docs/demo-report.md`` (with ``docs/img/demo-curves.png``) is
   rewritten.

"Pre-filter alone" is eval/run.py with ``--top-k 1``: the VLM then scores only the pre-filter's
first image, which stays first, so the ranking is exactly the pre-filter's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from chatreid.atomic import install_dir
from chatreid.metrics import pair_auc as auc

if TYPE_CHECKING:  # torch loads with the steps that need it, not with `--help`
    import torch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "models" / "chatreid-demo"
DEFAULT_REPORT = REPO / "docs" / "demo-report.md"
LAYOUTS = ("market", "ltcc", "sysu", "pedes")
SETTING = {"market": "standard", "ltcc": "cloth-changing", "sysu": "visible-infrared", "pedes": "text-to-image"}
# The ablation rows of Table 4 (stage chains), plus "1+2" (the demo chain before stage 3) as a diagnostic.
CHAINS = {"1+2+3": (1, 2, 3), "2+3": (2, 3), "3": (3,), "1+2": (1, 2)}


@dataclass
class DemoConfig:
    """Everything the build depends on; the seed fixes every random choice."""

    name: str
    # The stage data's worlds: enough identities and rows that no row repeats within a stage
    # (fine-tuning the pretrained base on a few dozen people memorises them and forgets the rest)
    ids: dict = field(default_factory=lambda: {"market": 300, "ltcc": 150, "sysu": 150, "pedes": 300})
    images_per_id: dict | None = None  # None: chatreid synth's defaults per layout
    # model (random init): decoder width/depth, vision tower depth/width, patch size
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    vision_depth: int = 4
    vision_embed: int = 96
    vision_heads: int = 4
    patch: int = 16
    # The image processor's pixel cap: 128x64 crops are read at 64x32, 4x2 patches of 16 pixels,
    # 2 tokens after the 2x2 merger. Comparing two images is then a token-against-token match, and
    # at equal wall time it learns faster than 8 tokens a crop (docs/demo-learning.md).
    max_pixels: int = 64 * 32
    # instruction rows per stage (train + validation)
    rows: dict = field(default_factory=lambda: {1: 6000, 2: 12000, 3: 3000})
    # stage 2: the pairwise scorer reads the one-to-one Yes/No answers, so they get more weight
    # than the paper's mixture (27.5% / 9%); the other five tasks stay in.
    mix2: tuple = ("i2i_one_to_one=0.35", "i2i_many_to_many=0.15", "t2i_one_to_one=0.2",
                   "t2i_many_to_one=0.075", "t2i_one_to_many=0.075", "attr_compare=0.075",
                   "attr_predict=0.075")
    gallery2: tuple = (2, 4)  # stage-2 gallery N ~ U{a..b}: few images a row keeps rows short
    gallery3: tuple = (2, 5)
    # stage 3's mixture over its default (--mix of build-data; empty: the default, whose Yes/No
    # replay is 20% of the rows)
    mix3: tuple = ()
    # Stage 1 needs hundreds of steps before colour words come from the image (docs/demo-learning.md)
    # stage 2's held-out AUC peaks near step 200 and then falls (docs/demo-learning.md, fourth round)
    steps: dict = field(default_factory=lambda: {1: 800, 2: 200, 3: 150})
    batch: int = 8
    # Fine-tuning rates: at 1e-3 the stages wipe out the pretrained comparison within 200 steps,
    # stage 2 at 2e-4 still takes most of it (third round), stage 3 at 1e-4 a tenth of the AUC
    # after stage 2 (fourth round; docs/demo-learning.md)
    lr: dict = field(default_factory=lambda: {1: 2e-4, 2: 5e-5, 3: 3e-5})
    schedule: str = "constant_with_warmup"  # transformers' lr_scheduler_type, after a 5% warmup
    # Stage 2's decoder. The paper's surgery ("base") puts the stage-1 encoder into a fresh copy of
    # the *pretrained* base decoder, which already speaks. Our base is random, so a fresh decoder
    # throws away everything stage 1 taught it, including how to read image tokens; "stage1"
    # keeps the stage-1 decoder (see docs/demo-learning.md).
    stage2_decoder: str = "base"
    # pre-filter head the VLM re-ranks: the ImageNet pre-filter's top 10 holds too few of the
    # matches (a perfect re-ranker of it reaches market mAP 23.6; of its top 100, 61.0)
    top_k: int = 100
    prefilter: str = "efficientnet_lite0"  # eval/run.py's default (pip-shipped ImageNet weights)
    sysu_trials: int = 1
    ablation: bool = True
    diagnostic: bool = True  # also evaluate 1+2 (the demo chain before stage 3)
    seed: int = 0
    # Comparison pretraining (chatreid.training.compare): the miniature's stand-in for the
    # pretrained VLM the paper starts from, on worlds of its own (no person of the stage data or of
    # the evaluation). Every chain of the ablation starts from this one base. 0 steps: random base.
    pretrain_ids: dict = field(default_factory=lambda: {"market": 3000, "sysu": 800, "ltcc": 800})
    pretrain_images_per_id: dict = field(default_factory=lambda: {"market": 4, "sysu": 6, "ltcc": 6})
    pretrain_steps: int = 2000
    pretrain_batch: int = 32
    pretrain_lr: float = 1e-3
    pretrain_describe: int = 6  # caption rows per pretraining batch, beside the pairs: the base describes too
    pretrain_hard_negatives: float = 0.5  # CompareConfig.hard_negatives (docs/demo-learning.md, (13))
    # Evaluation on fresh worlds (their held-out identities; never trained on, never pretrained on)
    eval_ids: dict = field(default_factory=lambda: {"market": 100, "ltcc": 60, "sysu": 60, "pedes": 200})
    seeds: int = 1  # stage-training seeds of the ablation (one shared base); the demo is seed 0's 1+2+3
    curve_every: int = 100  # held-out P(Yes) AUC every this many steps of each stage
    curve_pairs: int = 100  # same and other pairs per layout for the learning curves

    def __post_init__(self):
        if self.stage2_decoder not in ("base", "stage1"):
            raise ValueError(f"stage2_decoder must be 'base' (the paper's surgery) or 'stage1', not {self.stage2_decoder!r}")

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS = {
    # the default build: the whole recipe, sized for 30 minutes on 2 CPU cores
    "full": DemoConfig("full"),
    # the shipped demo model (models/chatreid-demo, docs/demo-report.md): the same recipe with a
    # three times longer pretraining and the ablation over three stage seeds; about 55 minutes on 2
    # CPU cores
    "ship": DemoConfig("ship", pretrain_steps=6000, seeds=3),
    # a quick end-to-end run (a few minutes): the same pipeline with fewer identities, rows and
    # training steps, and a smaller model
    "small": DemoConfig("small", ids={"market": 16, "ltcc": 30, "sysu": 20, "pedes": 30},
                        images_per_id={"market": 6, "ltcc": 12, "sysu": 8, "pedes": 3},
                        hidden=64, layers=2, vision_depth=2, vision_embed=32, vision_heads=2,
                        rows={1: 120, 2: 160, 3: 80}, steps={1: 10, 2: 10, 3: 6}, batch=4, top_k=5,
                        pretrain_ids={"market": 30, "sysu": 12, "ltcc": 12},
                        pretrain_images_per_id={"market": 4, "sysu": 6, "ltcc": 6}, pretrain_steps=20,
                        pretrain_batch=8, eval_ids={"market": 16, "ltcc": 24, "sysu": 15, "pedes": 30},
                        seeds=2, curve_every=5, curve_pairs=10),
}


# ----------------------------------------------------------------------------------------------
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


def _chatreid(argv: list[str]) -> None:
    """One `chatreid` command, in this process; a non-zero exit stops the build."""
    from chatreid.cli import main

    rc = main([str(a) for a in argv])
    if rc:
        raise RuntimeError(f"chatreid {' '.join(map(str, argv))} failed with exit code {rc}")


def _load_script(path: Path, name: str):
    """train/sft.py and eval/run.py are scripts, not package modules: load them by path."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = sys.modules.get(name)
    if mod is None:
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses look their module up while the script is executed
        spec.loader.exec_module(mod)
    return mod


# Each purpose draws its worlds from its own seed range, so no person is in two of them; the
# evaluation worlds' folder is not work/eval, where eval/run.py writes its results.
WORLD_SEEDS = {"synth": 0, "pretrain": 1_000_000, "eval": 2_000_000}
WORLD_DIRS = {"synth": "synth", "pretrain": "pretrain", "eval": "eval_worlds"}


def make_world(cfg: DemoConfig, work: Path, purpose: str = "synth") -> dict[str, Path]:
    """One SynthPeds world per layout: ``synth`` (the stage data), ``pretrain`` (comparison
    pretraining) or ``eval`` (the fresh worlds every model is measured on)."""
    ids, per_id = {"synth": (cfg.ids, cfg.images_per_id), "pretrain": (cfg.pretrain_ids, cfg.pretrain_images_per_id),
                   "eval": (cfg.eval_ids, None)}[purpose]
    roots = {}
    for i, layout in enumerate(LAYOUTS):
        if layout not in ids:
            continue
        out = work / WORLD_DIRS[purpose] / layout
        argv = ["synth", "--layout", layout, "--ids", ids[layout],
                "--seed", WORLD_SEEDS[purpose] + cfg.seed * 1000 + 101 * (i + 1), "--out", out, "--overwrite"]
        if per_id:
            argv += ["--images-per-id", per_id[layout]]
        _chatreid(argv)
        roots[layout] = out
    return roots


def make_store(roots: dict[str, Path], out: Path) -> Path:
    argv = ["store", "build", "--out", out, "--overwrite"]
    for layout, root in roots.items():  # distinct dataset names: image ids stay unique across layouts
        argv += ["--source", f"synthpeds,dataset=synthpeds_{layout}:{root}"]
    _chatreid(argv)
    return out


def make_instructions(cfg: DemoConfig, store: Path, work: Path) -> dict[int, Path]:
    data = {}
    for stage in (1, 2, 3):
        out = work / "data" / f"stage{stage}"
        argv = ["build-data", "--stage", stage, "--store", store, "--out", out, "--size", cfg.rows[stage],
                "--seed", cfg.seed, "--overwrite", "--val-fraction", "0.05"]
        if stage == 2:
            argv += ["--mix", *cfg.mix2, "--gallery", *cfg.gallery2]
        if stage == 3:
            argv += ["--gallery", *cfg.gallery3] + (["--mix", *cfg.mix3] if cfg.mix3 else [])
        _chatreid(argv)
        data[stage] = out
    return data


def make_base_model(cfg: DemoConfig, out: Path) -> Path:
    """A randomly initialised Qwen2-VL: the tiny factory's tokenizer and config, scaled up, with
    ``cfg.patch``-pixel patches; the image processor's pixel cap (``cfg.max_pixels``) brings every
    crop, and stage 1's upsizing to 256x128, back to the same grid: on synthetic crops more pixels
    would only cost tokens."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from chatreid.model.loading import ChatReIDQwen2VLProcessor
    from chatreid.model.templates import QWEN2_VL_CHAT_TEMPLATE
    from chatreid.model.tiny import build_tiny_tokenizer, tiny_qwen2vl_config

    tokenizer = build_tiny_tokenizer(seed=cfg.seed)
    config = tiny_qwen2vl_config(tokenizer, hidden_size=cfg.hidden, num_attention_heads=cfg.heads,
                                 num_hidden_layers=cfg.layers, num_key_value_heads=cfg.kv_heads,
                                 vision_depth=cfg.vision_depth, vision_embed_dim=cfg.vision_embed)
    config.vision_config.patch_size = cfg.patch
    config.vision_config.num_heads = cfg.vision_heads
    factor = cfg.patch * 2  # the 2x2 merger
    image_processor = Qwen2VLImageProcessorPil(patch_size=cfg.patch, min_pixels=factor * factor,
                                               max_pixels=cfg.max_pixels)
    processor = ChatReIDQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                         chat_template=QWEN2_VL_CHAT_TEMPLATE)
    torch.manual_seed(cfg.seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.eos_token_id = [config.text_config.eos_token_id, config.text_config.bos_token_id]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    image_processor.save_pretrained(out)
    return out


def pretrain_base(cfg: DemoConfig, base: Path, store: Path, probe, out: Path) -> tuple[Path, dict]:
    """The comparison pretraining (``chatreid.training.compare``) of the random ``base`` on the
    pretraining worlds (every split: they are only ever trained on); returns the pretrained base and
    its learning curve."""
    import torch

    from chatreid.data.store import ImageStore
    from chatreid.model import load_model_and_processor
    from chatreid.training.compare import CompareConfig, pretrain

    model, processor = load_model_and_processor(str(base), dtype=torch.float32)
    if torch.cuda.is_available():
        model = model.cuda()
    compare = CompareConfig(steps=cfg.pretrain_steps, batch=cfg.pretrain_batch, lr=cfg.pretrain_lr,
                            describe=cfg.pretrain_describe, hard_negatives=cfg.pretrain_hard_negatives,
                            eval_every=2 * cfg.curve_every, seed=cfg.seed)
    result = pretrain(model, processor, ImageStore.load(str(store)), compare, probe,
                      splits=("train", "query", "gallery"))
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out)  # tokenizer, processor, chat template; the weights are replaced next
    model.cpu().save_pretrained(out, safe_serialization=True)
    return out, result


def heldout_probe(cfg: DemoConfig, eval_store: Path):
    """Same- and other-identity pairs of the evaluation worlds' held-out people (image layouts),
    on which every learning curve of the build is measured."""
    from chatreid.data.store import ImageStore
    from chatreid.training.compare import PairProbe

    groups = {l: f"synthpeds_{l}" for l in LAYOUTS if l != "pedes" and l in cfg.eval_ids}
    return PairProbe.sample(ImageStore.load(str(eval_store)), groups, n=cfg.curve_pairs, seed=cfg.seed)


def train_stage(sft, cfg: DemoConfig, stage: int, data: dict, store: Path, base: Path, prev: Path | None,
                out: Path, seed: int = 0, callbacks=None) -> Path:
    import torch

    if stage == 2 and cfg.stage2_decoder == "stage1":
        base = prev  # the surgery's "fresh decoder" then comes from the stage-1 model itself
    # fp32 everywhere, so a GPU run learns what the CPU run learns (it only runs faster)
    argv = ["--config", REPO / f"train/configs/stage{stage}.yaml", "--stage", stage,
            "--base_model", base, "--dataset_name", data[stage], "--image_store", store, "--output_dir", out,
            "--use_cpu", str(not torch.cuda.is_available()).lower(), "--bf16", "false", "--dtype", "float32",
            "--max_steps", cfg.steps[stage],
            "--per_device_train_batch_size", cfg.batch, "--gradient_accumulation_steps", 1,
            "--learning_rate", cfg.lr[stage], "--warmup_steps", 0.05, "--lr_scheduler_type", cfg.schedule,
            "--logging_steps", 10, "--save_strategy", "no", "--dataloader_num_workers", 0,
            "--dataloader_persistent_workers", "false", "--report_to", "none", "--seed", seed,
            "--disable_tqdm", "true"]
    if prev is not None:
        argv += ["--previous_stage_checkpoint", prev]
    rc = sft.cli([str(a) for a in argv], callbacks=callbacks)
    if rc:
        raise RuntimeError(f"train/sft.py stage {stage} -> {out} failed with exit code {rc}")
    return out / "final"


def final_loss(final_dir: Path) -> float | None:
    """The last logged training loss, from the model card train/sft.py writes."""
    card = Path(final_dir) / "README.md"
    for line in card.read_text().splitlines() if card.is_file() else []:
        if "training loss" in line:
            try:
                return float(line.rsplit(":", 1)[1])
            except ValueError:
                return None
    return None


def seed_label(chain: str, k: int) -> str:
    """The results key of ``chain`` trained with the build's ``k``-th stage seed."""
    return chain if k == 0 else f"{chain}@{k}"


def train_chains(cfg: DemoConfig, data: dict, store: Path, base: Path, work: Path, timer: Timer,
                 probe=None) -> tuple[dict[str, Path], dict[str, list]]:
    """Every chain of CHAINS for each of ``cfg.seeds`` stage seeds, sharing prefixes (1+2 is the
    first half of 1+2+3), all from ``base``. Returns the models by label (:func:`seed_label`) and,
    with ``probe``, each trained stage's held-out learning curve by run name (``s12`` is stage 2 of
    the 1+2 prefix)."""
    from chatreid.model import load_processor
    from chatreid.training.compare import ProbeCallback

    sft = _load_script(REPO / "train" / "sft.py", "chatreid_demo_sft")
    processor = load_processor(str(base)) if probe is not None else None
    chains = {k: v for k, v in CHAINS.items()
              if (cfg.ablation or k not in ("2+3", "3")) and (cfg.diagnostic or k != "1+2")}
    models, curves = {}, {}
    for k in range(cfg.seeds):
        done: dict[tuple, Path] = {(): base}
        for label, chain in sorted(chains.items(), key=lambda kv: -len(kv[1])):
            for i, stage in enumerate(chain):
                key = chain[:i + 1]
                if key in done:
                    continue
                name = "s" + "".join(map(str, key)) + (f"@{k}" if k else "")
                callback = ProbeCallback(probe, processor, cfg.curve_every) if probe is not None else None
                with timer(f"train stage {stage} ({'+'.join(map(str, key))}, seed {cfg.seed + k})"):
                    done[key] = train_stage(sft, cfg, stage, data, store, base,
                                            None if stage == 1 else done[chain[:i]], work / "runs" / name,
                                            seed=cfg.seed + k, callbacks=[callback] if callback else None)
                if callback is not None:
                    curves[name] = callback.curve
            models[seed_label(label, k)] = done[chain]
    return models, curves


def evaluate(cfg: DemoConfig, models: dict[str, Path], roots: dict[str, Path], work: Path,
             timer: Timer) -> dict:
    """Per layout: every model (VLM re-ranking the pre-filter's top-k), then the pre-filter alone and
    the colour histogram (text queries have no image to pre-filter: VLM rows only)."""
    run = _load_script(REPO / "eval" / "run.py", "chatreid_demo_eval")
    results: dict[str, dict] = {}
    demo = str(models["1+2+3"])
    for layout, root in roots.items():
        base_args = ["--dataset", f"synthpeds:{root}", "--vis", "0", "--batch-size", 32, "--prefilter", cfg.prefilter]
        if layout == "sysu":
            base_args += ["--trials", cfg.sysu_trials]
        vlm = [a for label, path in models.items() for a in ("--model", path, "--label", label)]
        runs = [("vlm", vlm + (["--top-k", cfg.top_k] if layout != "pedes" else []))]
        if layout != "pedes":
            runs += [("prefilter", ["--model", demo, "--label", "pre-filter", "--top-k", 1])]
            if cfg.prefilter != "color_histogram":  # later --prefilter wins in argparse
                runs += [("color_histogram", ["--model", demo, "--label", "colour histogram", "--top-k", 1,
                                              "--prefilter", "color_histogram"])]
        results[layout] = {}
        for name, extra in runs:
            out = work / "eval" / layout / name
            if out.exists():
                shutil.rmtree(out)  # a fresh run: eval/run.py would otherwise resume from old rankings
            with timer(f"eval {layout} ({name})"):
                rc = run.main([str(a) for a in base_args + extra + ["--out", out]])
            if rc:
                raise RuntimeError(f"eval/run.py on {layout} ({name}) failed with exit code {rc}")
            for res_file in out.glob("*/results.json"):
                res = json.loads(res_file.read_text())
                results[layout][res["label"]] = {"rank1": res["mean"]["rank1"], "mAP": res["mean"]["mAP"],
                                                 "mINP": res["mean"]["mINP"], "queries": res["num_queries"],
                                                 "gallery": res["num_gallery"][0], "protocol": res["protocol"],
                                                 "top_k": res["top_k"], "prefilter": res["prefilter"]}
    return results


def scored_pairs(work: Path, roots: dict[str, Path], cfg: DemoConfig) -> dict:
    """From eval/run.py's own ranking files (nothing is re-scored): per layout and model label, the
    (query, candidate record, P(Yes), same identity) of every candidate the model scored."""
    sys.path.insert(0, str(REPO / "eval"))
    from benchmarks import check_protocol, load_trials

    out: dict[str, dict] = {}
    for layout, root in roots.items():
        protocol = check_protocol("synthpeds", str(root), None)
        trial = load_trials("synthpeds", str(root), protocol, cfg.sysu_trials if layout == "sysu" else None)[0]
        queries = {q.qid: q for q in trial.queries}
        for folder in sorted((work / "eval" / layout / "vlm").glob(f"*/trial_{trial.name}")):
            label = json.loads((folder.parent / "results.json").read_text())["label"]
            rows = out.setdefault(layout, {}).setdefault(label, [])
            for f in sorted(folder.glob("rankings.*.jsonl")):
                for line in f.read_text().splitlines():
                    row = json.loads(line)
                    q = queries[row["qid"]]
                    rows += [(q, trial.gallery[g], score, trial.gallery[g].pid == q.pid)
                             for g, score in zip(row["ranking"], row["scores"])]
    return out


def yes_separation(pairs: dict) -> dict:
    """Does the VLM tell people apart? Over the candidates each model scored, the AUC of P(Yes)
    for same-identity against other-identity candidates (0.5: chance, 1: perfect) and the mean
    P(Yes) of each group."""
    out: dict[str, dict] = {}
    for layout, by_label in pairs.items():
        for label, rows in by_label.items():
            pos = [score for *_, score, same in rows if same]
            neg = [score for *_, score, same in rows if not same]
            if pos and neg:
                out.setdefault(layout, {})[label] = {"auc": auc(pos, neg), "p_same": sum(pos) / len(pos),
                                                     "p_other": sum(neg) / len(neg), "pairs": len(rows)}
    return out


def region_features(model, processor, images) -> torch.Tensor:
    """Each image's merged vision tokens (what the decoder reads), averaged into 8 groups of
    consecutive tokens in raster order (at 64x32 the 4x2 tokens themselves, at 128x64 eight
    horizontal bands), flattened and L2-normalised: (n, 8 * hidden)."""
    import torch

    feats = []
    with torch.no_grad():
        for im in images:
            x = processor.image_processor(images=[im], return_tensors="pt")
            out = model.model.get_image_features(x["pixel_values"].to(model.dtype), x["image_grid_thw"])
            out = getattr(out, "pooler_output", out)
            tokens = torch.cat(list(out)) if isinstance(out, (list, tuple)) else out
            pooled = torch.nn.functional.adaptive_avg_pool1d(tokens.T.float()[None], 8)[0]
            feats.append(torch.nn.functional.normalize(pooled.flatten(), dim=0))
    return torch.stack(feats)


def feature_separation(pairs: dict, models: dict[str, Path]) -> dict:
    """On the same candidate pairs as :func:`yes_separation` (image queries), the AUC of the cosine
    between each model's own image features (:func:`region_features`). No decoder is involved, so
    a feature AUC well above the P(Yes) AUC says the image tokens carry what tells these people
    apart and the decoder has not learned to compare two images (docs/demo-learning.md)."""
    import torch
    from PIL import Image

    from chatreid.model import load_model_and_processor

    out: dict[str, dict] = {}
    for label, path in models.items():
        model, processor = load_model_and_processor(str(path), dtype=torch.float32)
        model.eval()
        for layout, by_label in pairs.items():
            rows = [r for r in by_label.get(label, []) if r[0].path]  # text queries: no image to compare
            if not rows:
                continue
            paths = sorted({r[0].path for r in rows} | {r[1].path for r in rows})
            index = {p: i for i, p in enumerate(paths)}
            f = region_features(model, processor, [Image.open(p).convert("RGB") for p in paths])
            cos = [float(f[index[q.path]] @ f[index[g.path]]) for q, g, _, _ in rows]
            pos = [c for c, r in zip(cos, rows) if r[3]]
            neg = [c for c, r in zip(cos, rows) if not r[3]]
            if pos and neg:
                out.setdefault(layout, {})[label] = {"auc": auc(pos, neg), "pairs": len(rows)}
        del model
    return out


# ----------------------------------------------------------------------------------------------
# outputs
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


def model_card(cfg: DemoConfig, params: int, results: dict) -> str:
    """README.md of the demo model. Its first paragraph is the banner the chat app shows (app.py's
    ``_banner_markdown``; the heading follows the front matter directly so that it is skipped)."""
    main = results.get("market", {}).get("1+2+3")
    score = f" (SynthPeds standard Re-ID: Rank-1 {100 * main['rank1']:.1f}, mAP {100 * main['mAP']:.1f})" if main else ""
    image_layouts = [l for l in LAYOUTS if "pre-filter" in results.get(l, {}) and "1+2+3" in results[l]]
    beats = sum(results[l]["1+2+3"]["mAP"] > results[l]["pre-filter"]["mAP"] for l in image_layouts)
    if image_layouts and 2 * beats <= len(image_layouts):  # say so where the users will read it
        score += (f"; at this size it does not beat its own pre-filter (better in {beats} of "
                  f"{len(image_layouts)} image settings), so treat its answers as a demonstration of the pipeline")
    return f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: image-text-to-text
tags: [chatreid, person-reid, qwen2-vl, demo]
---
# ChatReID demo model

This is the **ChatReID demo model**: a {params / 1e6:.1f}M-parameter Qwen2-VL-architecture model trained from \
scratch on CPU cores: a comparison pretraining standing in for the pretrained VLM the paper starts from, \
then the paper's three stages, all on SynthPeds, our procedural pedestrian world{score}. It knows synthetic people only: do not expect it to work on real photos. To use a real \
checkpoint, start the app with `python app.py --model PATH_OR_HUB_ID` or set `CHATREID_MODEL`.

Built by `python -m chatreid.demo build --config {cfg.name}` (seed {cfg.seed}); the numbers, the stage
ablation and the baselines are in `docs/demo-report.md`.

## Configuration

```json
{json.dumps(cfg.to_dict(), indent=1, default=str)}
```
"""


def install(src: Path, out: Path, card: str, extra: dict) -> None:
    """Copy the model to ``out`` atomically: built beside it, then swapped in by rename, so a
    crash leaves either the old model or the new one, never half of one."""
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
        install_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _load() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _seed_runs(results: dict, layout: str, key: str, seeds: int) -> list[dict]:
    """The results of row ``key`` in ``layout`` for each stage seed that has one."""
    by_label = results.get(layout, {})
    return [by_label[seed_label(key, k)] for k in range(max(seeds, 1)) if seed_label(key, k) in by_label]


def _mean(xs):
    return sum(xs) / len(xs) if xs else None


def _sd(xs) -> float:
    m = _mean(xs)
    return (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0


def chain_mean_maps(results: dict, chain: str, seeds: int) -> list[float]:
    """Per stage seed, ``chain``'s mAP averaged over the settings (the Table 4 number); seeds
    missing a setting are left out."""
    out = []
    for k in range(max(seeds, 1)):
        label = seed_label(chain, k)
        maps = [results[l][label]["mAP"] for l in LAYOUTS if label in results.get(l, {})]
        if len(maps) == len(LAYOUTS):
            out.append(sum(maps) / len(maps))
    return out


def _verdicts(cfg: DemoConfig, results: dict) -> list[str]:
    """The targets of the build, in words: VLM re-ranking against the pre-filter per image setting,
    and the Table 4 ordering over the stage seeds."""
    out = []
    for layout in LAYOUTS:
        pre = results.get(layout, {}).get("pre-filter")
        runs = _seed_runs(results, layout, "1+2+3", cfg.seeds)
        if pre and runs:
            gains = [r["mAP"] - pre["mAP"] for r in runs]
            out.append(f"- {SETTING[layout]} ({layout}): 1+2+3 re-ranking vs the pre-filter alone, mAP "
                       f"{'+' if _mean(gains) >= 0 else ''}{100 * _mean(gains):.1f} points"
                       + (f" (per seed: {', '.join(f'{100 * g:+.1f}' for g in gains)})" if len(gains) > 1 else "") + ".")
    if cfg.ablation:
        order = [(c, chain_mean_maps(results, c, cfg.seeds)) for c in ("1+2+3", "2+3", "3")]
        if all(m for _, m in order):
            text = ", ".join(f"{c} {100 * _mean(m):.1f}" + (f" ±{100 * _sd(m):.1f}" if len(m) > 1 else "")
                              for c, m in order)
            n = min(len(m) for _, m in order)
            held = sum(order[0][1][k] > order[1][1][k] > order[2][1][k] for k in range(n))
            beyond = all(_mean(a) - _mean(b) > _sd(a) + _sd(b) for (_, a), (_, b) in zip(order, order[1:])) and n > 1
            out.append(f"- Table 4 in miniature, mean mAP over the four settings (mean ± sd over {n} stage "
                       f"seed{'s' if n > 1 else ''}): {text}. The ordering 1+2+3 > 2+3 > 3 holds in {held} of "
                       f"{n} seeds" + ("; every gap is larger than the two seed sds together" if beyond else
                                       "; not every gap is beyond the seed-to-seed spread" if n > 1 else "") + ".")
    return out


CURVES_PNG = "img/demo-curves.png"  # beside the report
CURVE_LAYOUTS = ("market", "ltcc", "sysu")
CHAIN_RUNS = {"1+2+3": ("s1", "s12", "s123"), "2+3": ("s2", "s23"), "3": ("s3",)}


def chain_curve(summary: dict, chain: str) -> list[tuple[int, str, dict]]:
    """(steps since the random base, run, AUCs) along ``chain`` for seed 0: the pretraining curve,
    then each stage's, each stage starting where the one before it ended."""
    pre = (summary.get("pretraining") or {}).get("curve") or []
    points = [(p["step"], "pretraining", p["auc"]) for p in pre]
    offset = pre[-1]["step"] if pre else 0
    for run in CHAIN_RUNS[chain]:
        curve = (summary.get("curves") or {}).get(run) or []
        points += [(offset + p["step"], run, p["auc"]) for p in curve]
        offset += curve[-1]["step"] if curve else 0
    return points


def learning_curves(summary: dict, cfg: DemoConfig) -> str:
    """The report's learning-curve section: pretraining by level, then each chain's stages."""
    pre, curves = summary.get("pretraining"), summary.get("curves") or {}
    if not pre and not curves:
        return ""
    cols = [l for l in CURVE_LAYOUTS if l in cfg.eval_ids]
    head = "| step | run | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols)
    out = ["## Learning curves: held-out P(Yes) AUC", "",
           f"Measured while training, on {cfg.curve_pairs} same-identity and {cfg.curve_pairs} other-identity pairs "
           "per layout of the evaluation worlds' people (random other identities; the pre-filter plays no part). "
           "Steps count from the random base; each stage starts where its predecessor ended. "
           f"Figure: `{CURVES_PNG}`.", ""]
    if pre:
        levels = ", ".join(f"{lv['level']} {lv['steps']} steps (loss {lv['end_loss']})" for lv in pre["levels"])
        out += [f"Comparison pretraining ({pre['seconds']:.0f} s): {levels}.", ""]
    for chain in CHAIN_RUNS:
        points = chain_curve(summary, chain)
        if not any(run != "pretraining" for _, run, _ in points):
            continue
        if chain != "1+2+3":  # the shared pretraining rows are shown once
            points = [p for p in points if p[1] != "pretraining"]
        out += [f"**{chain}**", "", head]
        out += [f"| {step} | {run} | " + " | ".join(f"{auc[l]:.2f}" if l in auc else "—" for l in cols) + " |"
                for step, run, auc in points]
        out.append("")
    return "\n".join(out)


def plot_curves(summary: dict, path: Path) -> None:
    """One panel per image layout: held-out P(Yes) AUC against steps for each chain (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVE_LAYOUTS), figsize=(4.2 * len(CURVE_LAYOUTS), 3.4), sharey=True)
    for ax, layout in zip(axes, CURVE_LAYOUTS):
        for chain in CHAIN_RUNS:
            points = [(s, a[layout]) for s, _, a in chain_curve(summary, chain) if layout in a]
            if points:
                ax.plot(*zip(*points), label=chain, lw=1.5)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        pre = (summary.get("pretraining") or {}).get("curve") or []
        if pre:
            ax.axvline(pre[-1]["step"], color="grey", lw=0.8, ls="--")
        ax.set_title(f"{SETTING[layout]} ({layout})")
        ax.set_xlabel("training steps (pretraining, then stages)")
    axes[0].set_ylabel("held-out P(Yes) AUC")
    axes[-1].legend(title="chain")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(summary: dict) -> str:
    """docs/demo-report.md from a build's summary (``runs/demo/summary.json``)."""
    cfg = DemoConfig(**summary["config"])
    cfg.steps = {int(k): v for k, v in cfg.steps.items()}  # JSON made the stage keys strings
    results, params, losses = summary["results"], summary["params"], summary.get("losses") or {}
    rows = [("1+2+3", "ChatReID demo (stages 1+2+3)")]
    if cfg.ablation:
        rows += [("2+3", "stages 2+3"), ("3", "stage 3 alone")]
    if cfg.diagnostic:
        rows += [("1+2", "stages 1+2 (no stage 3; diagnostic)")]
    rows += [("pre-filter", f"pre-filter alone (`{cfg.prefilter}`)"), ("colour histogram", "colour histogram (HSV, no learning)")]
    head = "| model | " + " | ".join(f"{SETTING[l]} ({l}) R1 / mAP" for l in LAYOUTS) + " | mean mAP |"
    lines = [head, "|" + "---|" * (len(LAYOUTS) + 2)]
    chains = {key for key, _ in rows} & set(CHAINS)
    for key, name in rows:
        cells, maps = [], []
        for layout in LAYOUTS:
            runs = _seed_runs(results, layout, key, cfg.seeds if key in chains else 1)
            if not runs:
                cells.append("—")
                continue
            r1, m = _mean([r["rank1"] for r in runs]), [r["mAP"] for r in runs]
            cells.append(f"{_pct(r1)} / {_pct(_mean(m))}" + (f" ±{_pct(_sd(m))}" if len(m) > 1 else ""))
            maps.append(_mean(m))
        mean = _pct(sum(maps) / len(maps)) if len(maps) == len(LAYOUTS) else "—"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} |")
    verdict = _verdicts(cfg, results)
    seeds_note = (f"Chain rows: mean over {cfg.seeds} stage-training seeds (one shared base), ± the seed sd of "
                  f"mAP; the demo model is seed {cfg.seed}'s 1+2+3." if cfg.seeds > 1 else "")
    sizes = []
    for layout in LAYOUTS:
        any_r = next(iter(results.get(layout, {}).values()), None)
        if any_r:
            sizes.append(f"{layout}: {any_r['queries']} queries, gallery {any_r['gallery']}, protocol `{any_r['protocol']}`")
    steps = "\n".join(f"| {k} | {v} |" for k, v in summary["steps_s"].items())
    sep = summary.get("separation") or {}
    sep_rows = "\n".join(
        f"| {key} | " + " | ".join(
            (lambda r: "—" if r is None else f"{r['auc']:.2f} ({r['p_same']:.2f} / {r['p_other']:.2f})")(
                sep.get(l, {}).get(key)) for l in LAYOUTS) + " |"
        for key in CHAINS if any(key in sep.get(l, {}) for l in LAYOUTS))
    fsep = summary.get("feature_separation") or {}
    feat_layouts = [l for l in LAYOUTS if l in fsep]
    feat_rows = "\n".join(
        f"| {key} | " + " | ".join(
            f"{sep.get(l, {}).get(key, {}).get('auc', float('nan')):.2f} | {fsep[l][key]['auc']:.2f}"
            if key in fsep[l] else "— | —" for l in feat_layouts) + " |"
        for key in CHAINS if any(key in fsep[l] for l in feat_layouts))
    feat_table = ("| model | " + " | ".join(f"{l} P(Yes) AUC | {l} feature AUC" for l in feat_layouts) + " |\n|---|"
                  + "---|---|" * len(feat_layouts) + "\n" + feat_rows) if feat_rows else "(not measured in this build)"
    loss_rows = "\n".join(f"| {'+'.join(k[1:])} | {cfg.steps[int(k[-1])]} | {v if v is None else round(v, 3)} |"
                          for k, v in (losses or {}).items())
    return f"""# ChatReID demo build: the method in miniature on SynthPeds

Regenerated by `python -m chatreid.demo build --config {cfg.name}` (seed {cfg.seed}); do not edit by hand.
The model ({params / 1e6:.2f}M parameters) starts from random weights. The comparison pretraining
(`chatreid.training.compare`, {cfg.pretrain_steps} steps on SynthPeds worlds of its own) stands in for
the pretrained VLM of the paper. Then the stages run through `train/sft.py`, and every chain of the
ablation starts from that one pretrained base. Everything is evaluated with `eval/run.py` on **fresh
worlds**: SynthPeds worlds drawn only for evaluation, whose people no step of the build trained or
pretrained on (their held-out identities, under each benchmark's protocol).

## Results (Rank-1 / mAP, %)

VLM rows: pairwise P(Yes) re-ranking of the pre-filter's top {cfg.top_k} (image queries), the rest
in pre-filter order; text-to-image queries have no image to pre-filter, so the VLM scores the
whole gallery and the image-only baselines have no entry.

{chr(10).join(lines)}

{seeds_note}

{chr(10).join(verdict)}

Evaluation sets: {'; '.join(sizes)}. SYSU: {cfg.sysu_trials} of the 10 gallery trials.

{learning_curves(summary, cfg)}

## Does the VLM tell people apart?

AUC of P(Yes) for same-identity vs other-identity candidates among those each model scored
(read from eval/run.py's ranking files; 0.5 is chance), and mean P(Yes) of each group.
The pre-filter's head is hard: its candidates already look alike.

| model | {' | '.join(f'{l} AUC (P same / P other)' for l in LAYOUTS)} |
|---|{'---|' * len(LAYOUTS)}
{sep_rows}

### The vision side vs the comparison

On the same pairs (image queries), the AUC of the cosine between each model's own image features
(its merged vision tokens pooled into 8 regions; no decoder involved) beside the AUC of its
P(Yes). Feature AUCs well above the P(Yes) AUCs mean that the image tokens the decoder reads already
carry what tells these people apart (even a random encoder's do: stage 3 alone keeps its random
encoder frozen) and the decoder has not learned to compare two images. `docs/demo-learning.md`
has the experiments behind this.

{feat_table}

## Training (final logged loss, answer tokens only)

| chain | steps of its last stage | loss |
|---|---|---|
{loss_rows}

## Build

- machine: {os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()};
  load average (1/5/15 min) at start {summary["load_start"]}, at end {summary["load_end"]}
- total wall time: {summary["total_s"]} s

| step | seconds |
|---|---|
{steps}

## Configuration

```json
{json.dumps(cfg.to_dict(), indent=1, default=str)}
```
"""


def write_report(summary: dict, path: Path) -> None:
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(report(summary))
    if summary.get("curves") or summary.get("pretraining"):
        plot_curves(summary, Path(path).parent / CURVES_PNG)
    tmp.replace(path)  # atomic: a reader never sees half a report


# ----------------------------------------------------------------------------------------------
PRETRAINING_FIELDS = ("seed", "hidden", "layers", "heads", "kv_heads", "vision_depth", "vision_embed",
                      "vision_heads", "patch", "max_pixels", "pretrain_ids", "pretrain_images_per_id",
                      "pretrain_steps", "pretrain_batch", "pretrain_lr", "pretrain_describe",
                      "pretrain_hard_negatives", "eval_ids", "curve_pairs", "curve_every")


def reusable_pretraining(cfg: DemoConfig, work: Path) -> dict | None:
    """The pretraining of an earlier build in ``work`` (its summary.json and base_pretrained/),
    when every field it depends on is the same as in ``cfg``; else None."""
    summary, folder = work / "summary.json", work / "base_pretrained"
    if not (summary.is_file() and (folder / "model.safetensors").is_file()):
        return None
    done = json.loads(summary.read_text())
    ours = json.loads(json.dumps(cfg.to_dict(), default=str))
    # a field newer than that build had its default value there
    theirs = {**json.loads(json.dumps(DemoConfig("defaults").to_dict(), default=str)), **done["config"]}
    if done.get("pretraining") and all(theirs[f] == ours[f] for f in PRETRAINING_FIELDS):
        return done["pretraining"]
    return None


def build(cfg: DemoConfig, out: Path = DEFAULT_OUT, work: Path = REPO / "runs" / "demo",
          report_path: Path | None = DEFAULT_REPORT, reuse_pretraining: bool = False) -> dict:
    """The whole build; ``reuse_pretraining``: take the pretrained base of an earlier build in
    ``work`` whose pretraining had the same configuration (to try another stage recipe on it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for the Hub
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    work = Path(work)
    pretraining = reusable_pretraining(cfg, work) if reuse_pretraining else None  # before any work
    if reuse_pretraining and pretraining is None:
        raise ValueError(f"--reuse-pretraining: {work} holds no finished build whose pretraining had this configuration")
    load_start = _load()
    timer = Timer()
    with timer("synth (stage data, pretraining and evaluation worlds)"):
        roots = make_world(cfg, work, "synth")
        eval_roots = make_world(cfg, work, "eval")
        pre_roots = make_world(cfg, work, "pretrain") if cfg.pretrain_steps and pretraining is None else {}
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
        with timer("comparison pretraining"):
            base, pretraining = pretrain_base(cfg, base, pre_store, probe, work / "base_pretrained")
    models, curves = train_chains(cfg, data, store, base, work, timer, probe)
    results = evaluate(cfg, models, eval_roots, work, timer)
    params = param_count(models["1+2+3"])
    losses = {p.parent.name: final_loss(p) for p in sorted((work / "runs").glob("s*/final"))}
    pairs = scored_pairs(work, eval_roots, cfg)
    main_models = {k: v for k, v in models.items() if "@" not in k}  # the features of seed 0's chains
    summary = {"losses": losses, "separation": yes_separation(pairs), "pretraining": pretraining,
               "curves": curves, "feature_separation": feature_separation(pairs, main_models), "config": cfg.to_dict(),
               "results": results, "steps_s": timer.steps, "total_s": timer.total,
               "load_start": load_start, "load_end": _load(), "params": params}
    install(models["1+2+3"], out, model_card(cfg, params, results), summary)
    if report_path is not None:
        write_report(json.loads(json.dumps(summary, default=str)), report_path)
    (work / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"[demo] done in {timer.total} s: model -> {out}" + (f", report -> {report_path}" if report_path else ""))
    return summary


def override(cfg: DemoConfig, assignments: list[str]) -> DemoConfig:
    """``["steps.1=800", "schedule=\"constant\""]`` -> a copy of ``cfg`` with those fields set."""
    fields = cfg.to_dict()
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep:
            raise ValueError(f"--set {text!r}: expected FIELD=VALUE")
        with contextlib.suppress(json.JSONDecodeError):  # else a bare word, a string: schedule=constant
            value = json.loads(value)
        name, _, sub = key.partition(".")
        if name not in fields:
            raise ValueError(f"--set {text!r}: DemoConfig has no field {name!r} (fields: {', '.join(fields)})")
        if sub:
            if not isinstance(fields[name], dict):
                raise ValueError(f"--set {text!r}: {name} is not a per-stage or per-layout table")
            table = dict(fields[name])
            k = int(sub) if sub.isdigit() else sub
            if k not in table:
                raise ValueError(f"--set {text!r}: {name} has no entry {sub!r} (entries: {', '.join(map(str, table))})")
            table[k] = value
            value = table
        elif isinstance(fields[name], dict) and isinstance(value, dict):  # a whole table: JSON keys are strings
            value = {int(k) if k.isdigit() else k: v for k, v in value.items()}
        fields[name] = value
    return DemoConfig(**{k: tuple(v) if isinstance(getattr(cfg, k), tuple) else v for k, v in fields.items()})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chatreid.demo", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the demo model and docs/demo-report.md")
    b.add_argument("--out", default=str(DEFAULT_OUT), help="where the demo model goes (default %(default)s)")
    b.add_argument("--config", choices=sorted(CONFIGS), default="full")
    b.add_argument("--work", default=str(REPO / "runs" / "demo"), help="intermediate files (default %(default)s)")
    b.add_argument("--report", default=str(DEFAULT_REPORT), help="report path ('' for none)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--no-ablation", action="store_true", help="train only the 1+2+3 chain")
    b.add_argument("--reuse-pretraining", action="store_true",
                   help="take the pretrained base of the last build in --work if its pretraining had the same settings")
    b.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one DemoConfig field (VALUE is JSON; a stage's entry as steps.1=800); repeatable")
    r = sub.add_parser("report", help="re-render the report from a finished build's summary.json")
    r.add_argument("--work", default=str(REPO / "runs" / "demo"))
    r.add_argument("--report", default=str(DEFAULT_REPORT))
    args = ap.parse_args(argv)
    if args.cmd == "report":
        summary = json.loads((Path(args.work) / "summary.json").read_text())
        summary.setdefault("losses", {p.parent.name: final_loss(p)
                                      for p in sorted((Path(args.work) / "runs").glob("s*/final"))})
        if "separation" not in summary:
            cfg = DemoConfig(**summary["config"])
            roots = {l: Path(args.work) / "synth" / l for l in LAYOUTS}
            summary["separation"] = yes_separation(scored_pairs(Path(args.work), roots, cfg))
        write_report(summary, Path(args.report))
        return 0
    try:
        cfg = override(replace(CONFIGS[args.config], seed=args.seed, ablation=not args.no_ablation), args.set)
        build(cfg, Path(args.out), Path(args.work), Path(args.report) if args.report else None,
              reuse_pretraining=args.reuse_pretraining)
    except (RuntimeError, ValueError, FileNotFoundError) as err:
        print(f"chatreid.demo: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

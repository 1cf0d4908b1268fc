"""Comparison pretraining: teach a model to answer "same person? Yes/No" from two images.

The paper starts from a pretrained VLM, which already compares two images; a model trained from
random weights does not learn to (docs/demo-learning.md: on real pairs alone the Yes/No loss sits
at chance for thousands of steps, as from-scratch same/different learners are known to). What does
work is an adaptive curriculum of positives, from pairs a random decoder can tell apart to real
Re-ID pairs:

    duplicate  the same image twice
    jitter     the same image, shifted by up to 3 px, brightness within 10%
    augment    the same image, cropped, colour-cast, brightened or darkened, mirrored, blurred
    camera     another image of the same identity (another camera where there is one; across
               modalities and clothes where the store has them, and with ``hard_positives``
               preferably so)

A level advances once the training loss (an exponential average) falls below ``advance_loss``,
or after ``max_level_steps``; about a quarter of each batch's pairs replay the easier levels.
The second image of every negative gets the same treatment as its level's positives, so "was the
second image edited?" never predicts the answer; at the camera level half of the negatives are
people dressed in the same colours (``hard_negatives``). Pairs are drawn fresh every step from the
store's ``train`` identities. Rows are the stage-2 ``i2i_one_to_one`` rows (same prompt, same
answers, same collator), so the skill is the one the retrieval engine's pairwise scorer reads.

This is what stands in, for the from-scratch miniature (``chatreid.demo``), for the pretrained
VLM the paper starts from; it is not a stage of the method. The loop is our own rather than
SFTTrainer's because the data is generated per step and the curriculum reads the loss.

Two modes (``CompareConfig.mode``):

* ``reid`` (the curriculum above): ends on real Re-ID pairs, across cameras, clothes and
  modalities, with dressed-alike negatives; it already teaches much of what the paper's stage 2
  teaches, so the stages have little left to add.
* ``generic``: only what a general pretrained VLM brings. The pairs stop at ``augment``: a
  positive is always one picture and an edited copy of it (optionally in grey-scale, ``grey``),
  a negative two people of one dataset picked at random; no two different pictures of one
  identity are ever paired, and no dressed-alike negatives are drawn. Beside the pairs, caption
  rows (describing an image, ``describe``) and caption-matching rows (``match``: "does this
  sentence fit this picture?", the stage-2 ``t2i_one_to_one`` prompt, answered Yes for one of the
  picture's own captions and No for a caption of another person's picture). Matching across
  cameras, outfits and modalities is left to the stages.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageFilter
from transformers import TrainerCallback

from chatreid import prompts
from chatreid.instructions.rows import make_row
from chatreid.metrics import pair_auc as auc
from chatreid.training.collate import IGNORE_INDEX, ReIDCollator

LEVELS = ("duplicate", "jitter", "augment", "camera")
MODES = {"reid": LEVELS, "generic": LEVELS[:3]}  # the curriculum levels of each mode
GREY = "grey"  # an edit beside the levels: the picture in grey-scale


@dataclass
class CompareConfig:
    steps: int = 2200
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 50
    advance_loss: float = 0.25   # loss (2 answer tokens: chance is ln 2 / 2 = 0.347) that ends a level
    max_level_steps: int = 800   # a level ends after this many steps whatever the loss
    min_level_steps: int = 50    # and not before this many
    replay: float = 0.25         # share of pairs drawn from the easier levels
    positive_prob: float = 0.5
    # share of the camera level's negatives drawn from people dressed in the same upper and lower
    # colours: the pre-filter's candidates look alike, and random people are easy to tell apart
    hard_negatives: float = 0.5
    # share of the camera level's positives drawn, where the person has them, in other clothes or
    # the other modality (the store's clothes_id, modality): another camera alone mostly shows the
    # same clothes in the same light, so "dressed alike" would pass for "same person"
    hard_positives: float = 0.0
    describe: int = 0            # caption rows per batch (the describing skill), beside the pairs
    match: int = 0               # caption-matching rows per batch (does this sentence fit this picture?)
    grey: float = 0.0            # share of pairs whose second image is also turned grey (both answers alike)
    mode: str = "reid"           # "reid" or "generic" (see the module docstring)
    eval_every: int = 200
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch", "max_level_steps", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"CompareConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.mode not in MODES:
            raise ValueError(f"CompareConfig.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("replay", "positive_prob", "hard_negatives", "grey", "hard_positives"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"CompareConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.describe < 0 or self.match < 0 or self.describe + self.match >= self.batch:
            raise ValueError(f"CompareConfig.describe must be in [0, batch - match), got {self.describe} "
                             f"(match {self.match}, batch {self.batch})")

    @property
    def levels(self) -> tuple[str, ...]:
        return MODES[self.mode]


# ----------------------------------------------------------------------------------------------
# images
def edit(image: Image.Image, level: str, rng: random.Random) -> Image.Image:
    """``image`` changed as the curriculum level says (``duplicate`` and ``camera``: unchanged;
    ``grey``: in grey-scale)."""
    if level in ("duplicate", "camera"):
        return image
    if level == GREY:
        return image.convert("L").convert("RGB")
    im = image.convert("RGB")
    w, h = im.size
    if level == "jitter":
        dx, dy = rng.randint(-3, 3), rng.randint(-3, 3)
        im = im.transform((w, h), Image.Transform.AFFINE, (1, 0, dx, 0, 1, dy), fillcolor=im.getpixel((0, 0)))
        return ImageEnhance.Brightness(im).enhance(rng.uniform(0.9, 1.1))
    if level != "augment":
        raise ValueError(f"unknown curriculum level {level!r}; levels: {', '.join(LEVELS + (GREY,))}")
    dx, dy = int(w * rng.uniform(0, 0.12)), int(h * rng.uniform(0, 0.08))
    im = im.crop((rng.randint(0, dx), rng.randint(0, dy), w - rng.randint(0, dx), h - rng.randint(0, dy)))
    arr = np.asarray(im.resize((w, h)), dtype=np.float32) * np.array([rng.uniform(0.8, 1.2) for _ in range(3)])
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.7, 1.3))
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return im.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2))) if rng.random() < 0.3 else im


class CurriculumImages:
    """An image store whose ids may carry an edit: ``"ID#augment:17"`` is image ``ID`` edited at
    level ``augment`` with seed 17 (so a batch can be rebuilt exactly); edits chain left to right
    (``"ID#augment:17#grey:0"``). Plain ids pass through."""

    def __init__(self, store):
        self.store = store

    def image(self, image_id: str) -> Image.Image:
        base, sep, spec = image_id.rpartition("#")
        if not sep:
            return self.store.image(image_id)
        level, _, seed = spec.partition(":")
        return edit(self.image(base), level, random.Random(int(seed)))


# ----------------------------------------------------------------------------------------------
# pairs
def pair_row(a: str, b: str, same: bool) -> dict:
    """A stage-2 ``i2i_one_to_one`` row (the verbatim prompt) for images ``a`` and ``b``."""
    return make_row("i2i_one_to_one", [(prompts.render("i2i_one_to_one"), prompts.answer_yes_no(same))],
                    [a, b], {"same": bool(same)})


class PairSampler:
    """Fresh image pairs from the identities of some splits of an image store.

    Identities are (dataset, pid); negatives pair two identities of the same dataset, so a pair
    never differs just by which synthetic world or benchmark it came from.
    """

    def __init__(self, store, splits: tuple[str, ...] = ("train",), datasets: tuple[str, ...] | None = None):
        meta = store.metadata()
        self.by_id: dict[tuple[str, int], list[int]] = {}
        self.image_id, self.camid = meta["image_id"], meta["camid"]
        self.clothes, self.modality = meta["clothes_id"], meta["modality"]
        self.captions = meta["captions"]
        for i, (ds, sp, pid) in enumerate(zip(meta["dataset"], meta["split"], meta["pid"])):
            if sp in splits and pid >= 0 and (datasets is None or ds in datasets):
                self.by_id.setdefault((ds, pid), []).append(i)
        self.ids = sorted(k for k, v in self.by_id.items() if len(v) >= 2)
        self.per_dataset: dict[str, list[tuple[str, int]]] = {}
        for key in self.ids:
            self.per_dataset.setdefault(key[0], []).append(key)
        self.lookalikes = _lookalikes(self.ids, self.by_id, meta["attributes"])
        if not self.ids or any(len(v) < 2 for v in self.per_dataset.values()):
            raise ValueError(f"image store: splits {list(splits)} need at least two identities with two or more "
                             f"images in each dataset to draw pairs (found {len(self.ids)} identities)")

    def other_view(self, rng: random.Random, ident: tuple[str, int], first: int, hard: float = 0.0) -> int:
        """Another image of ``ident``, from another camera where it has one; with probability
        ``hard``, in other clothes or the other modality where it has such."""
        images = [i for i in self.by_id[ident] if i != first]
        if hard and rng.random() < hard:
            changed = [i for i in images if (self.clothes[i] or "") != (self.clothes[first] or "")
                       or self.modality[i] != self.modality[first]]
            if changed:
                return rng.choice(changed)
        other_cam = [i for i in images if self.camid[i] != self.camid[first]]
        return rng.choice(other_cam or images)

    def positive(self, rng: random.Random, level: str, hard: float = 0.0) -> tuple[str, str]:
        ident = rng.choice(self.ids)
        first = rng.choice(self.by_id[ident])
        a = self.image_id[first]
        if level == "camera":
            return a, self.image_id[self.other_view(rng, ident, first, hard)]
        return a, a if level == "duplicate" else f"{a}#{level}:{rng.randrange(1 << 30)}"

    def negative(self, rng: random.Random, level: str, hard: bool = False) -> tuple[str, str]:
        """Two people of one dataset; ``hard``: dressed in the same colours, where the dataset has such."""
        ident = rng.choice(self.ids)
        pool = self.lookalikes.get(ident, []) if hard else []
        other = rng.choice(pool or [k for k in self.per_dataset[ident[0]] if k != ident] or [ident])
        a, b = (self.image_id[rng.choice(self.by_id[k])] for k in (ident, other))
        return a, b if level in ("duplicate", "camera") else f"{b}#{level}:{rng.randrange(1 << 30)}"

    def caption_row(self, rng: random.Random) -> dict:
        ident = rng.choice(self.ids)
        i = rng.choice(self.by_id[ident])
        captions = self.captions[i] or []
        if not captions:
            raise ValueError(f"image {self.image_id[i]} has no caption to describe")
        return make_row("caption", [(prompts.render("caption"), rng.choice(captions))], [self.image_id[i]], {})

    def match_row(self, rng: random.Random, positive_prob: float = 0.5) -> dict:
        """Does this sentence fit this picture? A stage-2 ``t2i_one_to_one`` row on one image: Yes
        with one of the image's own captions, No with a caption of another person's image of the
        same dataset (``meta["caption_of"]`` names the image the caption describes)."""
        ident = rng.choice(self.ids)
        i = rng.choice(self.by_id[ident])
        same = rng.random() < positive_prob
        j = i
        if not same:
            pool = self.per_dataset[ident[0]]
            other = ident
            while other == ident:  # the constructor guarantees two identities per dataset
                other = rng.choice(pool)
            j = rng.choice(self.by_id[other])
        captions = self.captions[j] or []
        if not captions:
            raise ValueError(f"image {self.image_id[j]} has no caption to match against an image")
        prompt = prompts.render("t2i_one_to_one", caption=rng.choice(captions))
        return make_row("t2i_one_to_one", [(prompt, prompts.answer_yes_no(same))], [self.image_id[i]],
                        {"same": bool(same), "caption_of": self.image_id[j]})

    def batch(self, rng: random.Random, n: int, level: int, cfg: CompareConfig) -> list[dict]:
        rows = []
        for _ in range(n):
            lv = cfg.levels[level if level == 0 or rng.random() >= cfg.replay else rng.randrange(level)]
            same = rng.random() < cfg.positive_prob
            hard = lv == "camera" and rng.random() < cfg.hard_negatives
            a, b = self.positive(rng, lv, cfg.hard_positives) if same else self.negative(rng, lv, hard)
            if cfg.grey and rng.random() < cfg.grey:  # positives and negatives alike
                b = f"{b}#{GREY}:0"
            rows.append(pair_row(*((a, b) if rng.random() < 0.5 else (b, a)), same))
        return rows


# ----------------------------------------------------------------------------------------------
# the model side
def row_losses(model, batch: dict) -> torch.Tensor:
    """Each row's mean cross-entropy over its answer tokens, (rows,). The language-model head runs
    on the answer positions only instead of every token of the batch."""
    labels = batch["labels"]
    hidden = model.model(**{k: v for k, v in batch.items() if k != "labels"}).last_hidden_state
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    tokens = F.cross_entropy(model.lm_head(hidden[:, :-1][keep]).float(), target[keep], reduction="none")
    row = torch.arange(len(labels), device=labels.device)[:, None].expand_as(target)[keep]
    sums = torch.zeros(len(labels), device=tokens.device).index_add(0, row, tokens)
    return sums / keep.sum(1).clamp(min=1)


def answer_loss(model, batch: dict) -> torch.Tensor:
    """The mean of :func:`row_losses`: every row weighs the same, so a long caption does not
    outweigh a one-word Yes/No answer (for rows of equal answer length: the stock token mean)."""
    return row_losses(model, batch).mean()


def linear_patch_embedding(model) -> None:
    """Run the vision tower's patch Conv3d (kernel == stride, one output per patch) as the linear
    map it is: same weights, same outputs, far cheaper on CPU. Patches this instance only."""
    from chatreid.model.families import family_of

    proj = family_of(model).vision_tower(model).patch_embed.proj
    if not isinstance(proj, torch.nn.Conv3d) or tuple(proj.kernel_size) != tuple(proj.stride):
        return
    out = proj.out_channels
    proj.forward = lambda x: F.linear(x.reshape(x.shape[0], -1), proj.weight.reshape(out, -1), proj.bias)


@torch.no_grad()
def yes_probabilities(model, processor, store, rows: list[dict], batch_size: int = 64) -> list[float]:
    """P(Yes) against P(No) at the answer position of each one-turn Yes/No row (stage-2 collation)."""
    yes, no = (processor.tokenizer.encode(w, add_special_tokens=False)[0] for w in (prompts.YES, prompts.NO))
    collator = ReIDCollator(processor, store, 2)
    was_training = model.training
    model.eval()
    out = []
    for s in range(0, len(rows), batch_size):
        b = {k: v.to(model.device) for k, v in collator(rows[s:s + batch_size]).items()}
        hidden = model.model(**{k: v for k, v in b.items() if k != "labels"}).last_hidden_state
        at = (b["labels"] != IGNORE_INDEX).int().argmax(1) - 1  # the position that predicts the answer
        logits = model.lm_head(hidden[torch.arange(len(at)), at]).float()
        out += torch.softmax(logits[:, [yes, no]], -1)[:, 0].tolist()
    model.train(was_training)
    return out


class PairProbe:
    """Held-out same/other pairs and the AUC of a model's P(Yes) on them, per group (layout).

    ``pairs``: (group, image a, image b, same). Scoring reads the answer position of the stage-2
    one-to-one row, exactly what the retrieval engine's pairwise scorer reads.
    """

    def __init__(self, store, pairs: list[tuple[str, str, str, bool]], batch_size: int = 64):
        self.store, self.pairs, self.batch_size = store, pairs, batch_size

    @classmethod
    def sample(cls, store, groups: dict[str, str], n: int = 100, seed: int = 0, split: str = "test") -> "PairProbe":
        """``n`` same and ``n`` other pairs per group from ``split`` identities (``query`` and ``gallery``
        images when ``split`` is ``"test"``); ``groups`` maps a group name to a dataset name."""
        rng = random.Random(seed)
        pairs = []
        for group, dataset in groups.items():
            sampler = PairSampler(store, ("query", "gallery") if split == "test" else (split,), (dataset,))
            for _ in range(n):
                ident = rng.choice(sampler.ids)
                first = rng.choice(sampler.by_id[ident])
                a = sampler.image_id[first]
                pairs.append((group, a, sampler.image_id[sampler.other_view(rng, ident, first)], True))
                pairs.append((group, *sampler.negative(rng, "camera"), False))
        return cls(store, pairs)

    def scores(self, model, processor) -> list[float]:
        rows = [pair_row(a, b, same) for _, a, b, same in self.pairs]
        return yes_probabilities(model, processor, self.store, rows, self.batch_size)

    def aucs(self, model, processor) -> dict[str, float]:
        scores = self.scores(model, processor)
        result = {}
        for group in dict.fromkeys(p[0] for p in self.pairs):
            pos = [s for s, p in zip(scores, self.pairs) if p[0] == group and p[3]]
            neg = [s for s, p in zip(scores, self.pairs) if p[0] == group and not p[3]]
            result[group] = round(auc(pos, neg), 4)
        return result


def _lookalikes(ids, by_id, attributes) -> dict[tuple[str, int], list[tuple[str, int]]]:
    """For each identity, the other identities of its dataset whose first colour-annotated image has
    the same upper and lower colours (infrared images carry no colours)."""
    look = {}
    for ident in ids:
        for i in by_id[ident]:
            a = json.loads(attributes[i]) if attributes[i] else {}
            if a.get("upper_color") and a.get("lower_color"):
                look[ident] = (ident[0], a["upper_color"], a["lower_color"])
                break
    groups: dict[tuple, list] = {}
    for ident, key in look.items():
        groups.setdefault(key, []).append(ident)
    return {ident: [k for k in groups[key] if k != ident] for ident, key in look.items()}


# ----------------------------------------------------------------------------------------------
def pretrain(model, processor, store, cfg: CompareConfig, probe: PairProbe | None = None,
             splits: tuple[str, ...] = ("train",), datasets: tuple[str, ...] | None = None, log=print) -> dict:
    """Train ``model`` in place on the comparison curriculum (``cfg.mode``); returns the learning curve
    (held-out AUC every ``cfg.eval_every`` steps when ``probe`` is given), the level schedule and
    the time taken. Pairs come from ``splits`` of ``datasets`` (None: every dataset) of ``store``."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    sampler = PairSampler(store, splits, datasets)
    collator = ReIDCollator(processor, CurriculumImages(store), 2)
    linear_patch_embedding(model)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    levels_of = cfg.levels
    level, level_start, ema = 0, 0, float("nan")
    curve, levels, t0 = [], [], time.time()

    def measure(step):
        if probe is not None:
            point = {"step": step, "level": levels_of[level], "loss": None if math.isnan(ema) else round(ema, 4),
                     "auc": probe.aucs(model, processor), "seconds": round(time.time() - t0, 1)}
            curve.append(point)
            log(f"[compare] {json.dumps(point)}")

    measure(0)
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1))
        # pairs and text rows in separate forwards: padded together, every pair row would be as long
        # as a caption row (about 3x the tokens)
        groups = [sampler.batch(rng, cfg.batch - cfg.describe - cfg.match, level, cfg)]
        if cfg.describe or cfg.match:
            groups.append([sampler.caption_row(rng) for _ in range(cfg.describe)] +
                          [sampler.match_row(rng, cfg.positive_prob) for _ in range(cfg.match)])
        losses = [row_losses(model, {k: v.to(model.device) for k, v in collator(rows).items()}) for rows in groups]
        opt.zero_grad(set_to_none=True)
        torch.cat(losses).mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        pair_loss = losses[0].mean().item()  # the curriculum reads the pairs only
        ema = pair_loss if math.isnan(ema) else 0.9 * ema + 0.1 * pair_loss
        on_level = step + 1 - level_start
        if level < len(levels_of) - 1 and on_level >= cfg.min_level_steps and step + 1 < cfg.steps and \
                (ema < cfg.advance_loss or on_level >= cfg.max_level_steps):
            levels.append({"level": levels_of[level], "steps": on_level, "end_loss": round(ema, 4)})
            log(f"[compare] step {step + 1}: level {levels_of[level]} done (loss {ema:.3f}); "
                f"next {levels_of[level + 1]}")
            level, level_start = level + 1, step + 1
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            measure(step + 1)
    levels.append({"level": levels_of[level], "steps": cfg.steps - level_start, "end_loss": round(ema, 4)})
    return {"config": asdict(cfg), "curve": curve, "levels": levels, "seconds": round(time.time() - t0, 1)}



class ProbeCallback(TrainerCallback):
    """Records ``probe``'s AUCs every ``every`` steps (and at the first and last), so a stage's
    learning curve is measured on people it never saw."""

    def __init__(self, probe: PairProbe, processor, every: int, log=print):
        self.probe, self.processor, self.every, self.log = probe, processor, every, log
        self.curve: list[dict] = []

    def _measure(self, state, model):
        if not self.curve or self.curve[-1]["step"] != state.global_step:
            loss = next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None)
            point = {"step": state.global_step, "loss": loss, "auc": self.probe.aucs(model, self.processor)}
            self.curve.append(point)
            self.log(f"[curve] {json.dumps(point)}")

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._measure(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._measure(state, model)

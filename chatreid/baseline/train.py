"""Training the Re-ID baseline: the "bag of tricks" recipe (Luo et al., CVPRW 2019).

ID loss (cross-entropy with label smoothing 0.1) on the BNNeck logits + triplet loss (margin 0.3,
batch-hard mining) on the features before the BNNeck; PK batches (P identities x K images);
random flip, pad-and-crop and random erasing; Adam with a linear warm-up and step decay. The
paper's schedule is 120 epochs, warm-up 10, decay x0.1 at 40 and 70; ``epochs`` scales the
milestones unless they are given.

Data: the ``train`` split of an image store (folder or Hub id) or of a benchmark read with
``chatreid.data.read`` (``NAME[,key=value...]:PATH``, e.g. ``market1501:/data/Market-1501`` or
``synthpeds:data/synth-market``). Identities are (dataset, pid) pairs, so a store holding several
benchmarks trains one classifier over all of them. Every train image is decoded once, resized and
kept in memory as uint8 (Market-1501 at 256x128: about 1.3 GB).
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from chatreid.baseline.model import BACKBONES, ReIDBaseline, save_baseline
from chatreid.data.trials import merge as merge_trials

log = logging.getLogger(__name__)


@dataclass
class BaselineArguments:
    """Options of ``train/baseline.py`` (every one a command-line flag of the same name)."""

    out: str = field(metadata={"help": "Folder to write the trained baseline to (replaced atomically)."})
    store: str | None = field(default=None, metadata={"help": "Image store (folder or Hub dataset id); its train split."})
    dataset: str | None = field(default=None, metadata={
        "help": "Instead of --store: a benchmark reader, NAME[,key=value...]:PATH (e.g. synthpeds:data/synth-market)."})
    backbone: str = field(default="efficientnet_lite0", metadata={"help": f"One of {BACKBONES}."})
    image_size: str = field(default="256x128", metadata={"help": "Input HEIGHTxWIDTH (Re-ID practice: 256x128)."})
    pretrained: bool = field(default=True, metadata={"help": "Start from ImageNet weights (pip-shipped for Lite0)."})
    epochs: int = field(default=120, metadata={"help": "Epochs; one epoch is about one pass over the images."})
    ids_per_batch: int = field(default=16, metadata={"help": "P of the PK sampler."})
    images_per_id: int = field(default=4, metadata={"help": "K of the PK sampler."})
    lr: float = field(default=3.5e-4, metadata={"help": "Adam learning rate after warm-up."})
    weight_decay: float = 5e-4
    warmup_epochs: float = field(default=10, metadata={"help": "Linear warm-up from lr * warmup_factor."})
    warmup_factor: float = 0.1
    milestones: str | None = field(default=None, metadata={
        "help": "Epochs at which lr is multiplied by gamma, comma-separated (default: epochs * 40/120, 70/120)."})
    gamma: float = 0.1
    label_smoothing: float = 0.1
    margin: float = field(default=0.3, metadata={"help": "Triplet loss margin."})
    erasing_prob: float = field(default=0.5, metadata={"help": "Random erasing probability."})
    grayscale_prob: float = field(default=0.0, metadata={
        "help": "Random grayscale probability (not in the bag of tricks; CAJ-style channel augmentation for "
                "visible-infrared data, where colour does not cross modalities). Default 0: off."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many steps (smoke runs)."})
    seed: int = 0
    device: str | None = field(default=None, metadata={"help": "Default: cuda when available."})
    push_to_hub: bool = False
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repo (default: the --out folder's name)."})
    hub_private_repo: bool | None = None
    hub_token: str | None = None

    def size(self) -> tuple[int, int]:
        try:
            h, w = (int(v) for v in self.image_size.lower().split("x"))
        except ValueError:
            raise ValueError(f"--image_size: expected HEIGHTxWIDTH such as 256x128, got {self.image_size!r}") from None
        if h < 32 or w < 32:
            raise ValueError(f"--image_size: at least 32x32, got {self.image_size!r}")
        return h, w

    def milestone_epochs(self) -> list[float]:
        if self.milestones:
            try:
                return [float(m) for m in self.milestones.split(",")]
            except ValueError:
                raise ValueError(f"--milestones: expected comma-separated epochs, got {self.milestones!r}") from None
        return [self.epochs * 40 / 120, self.epochs * 70 / 120]

    def check(self) -> None:
        if (self.store is None) == (self.dataset is None):
            raise ValueError("give exactly one of --store (an image store) and --dataset (NAME:PATH)")
        if self.backbone not in BACKBONES:
            raise ValueError(f"--backbone {self.backbone!r}: expected one of {BACKBONES}")
        self.size()
        self.milestone_epochs()
        for name in ("epochs", "ids_per_batch", "images_per_id"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.ids_per_batch < 2:
            raise ValueError("--ids_per_batch must be >= 2: the triplet loss needs other identities in the batch")


# -- data -------------------------------------------------------------------------------------
@dataclass
class TrainData:
    pixels: torch.Tensor  # uint8 (N, 3, H, W)
    labels: torch.Tensor  # int64 (N,), 0..num_ids-1
    num_ids: int
    source: str
    datasets: list[str]
    trials: dict | None = None  # identity splits trained on (chatreid.data.trials); None: not recorded


def _train_rows(args: BaselineArguments):
    """(image loader, [(dataset, pid)], source description, identity splits) of the train split."""
    if args.store is not None:
        from chatreid.data.store import ImageStore

        store = ImageStore.load(args.store)
        meta = store.metadata()
        rows = [i for i, s in enumerate(meta["split"]) if s == "train"]
        ids = [meta["image_id"][i] for i in rows]
        keys = [(meta["dataset"][i], meta["pid"][i]) for i in rows]
        return (lambda i: store.image(ids[i])), keys, f"image store {args.store}", store.trials()
    from PIL import Image

    from chatreid.data import read
    from chatreid.data.store import parse_source

    name, root, options = parse_source(args.dataset)
    everything = read(name, root, **options)
    records = [r for r in everything if r.split == "train"]

    def load(i):
        with Image.open(records[i].path) as im:
            return im.convert("RGB")

    split = {} if everything.trial is None else {name: everything.trial}
    return load, [(r.dataset, r.pid) for r in records], f"{name} at {root}", split


def load_train_data(args: BaselineArguments) -> TrainData:
    from chatreid.baseline.model import pixels

    load, keys, source, trials = _train_rows(args)
    keep = [i for i, (_, pid) in enumerate(keys) if pid >= 0]  # junk images (pid -1) carry no identity
    if not keep:
        raise ValueError(f"{source}: no train images with an identity (split 'train', pid >= 0)")
    names = sorted({keys[i] for i in keep})
    if len(names) < 2:
        raise ValueError(f"{source}: the train split holds {len(names)} identity; the triplet loss needs at least 2")
    index = {k: n for n, k in enumerate(names)}
    size = args.size()
    chunks = [pixels([load(i) for i in keep[j:j + 256]], size) for j in range(0, len(keep), 256)]
    return TrainData(torch.cat(chunks), torch.tensor([index[keys[i]] for i in keep]), len(names), source,
                     sorted({d for d, _ in names}), trials=None if trials is None else merge_trials(trials))


class PKSampler(torch.utils.data.Sampler):
    """Batches of P identities x K images, torchreid's RandomIdentitySampler: each epoch cuts
    every identity's shuffled images into groups of K (an identity with fewer than K images is
    drawn with replacement), then fills batches with groups of P distinct identities until fewer
    than P identities have groups left. An epoch is thus about one pass over the images."""

    def __init__(self, labels: torch.Tensor, p: int, k: int, seed: int = 0):
        self.k = k
        by_id = [np.flatnonzero(labels.numpy() == c) for c in range(int(labels.max()) + 1)]
        self.by_id = [ix for ix in by_id if len(ix)]
        self.p = min(p, len(self.by_id))
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Batches per epoch (an upper bound: the last few can fall short of P identities)."""
        return max(1, sum(max(1, len(ix) // self.k) for ix in self.by_id) // self.p)

    def __iter__(self):
        groups = []
        for ix in self.by_id:
            ix = self.rng.permutation(ix) if len(ix) >= self.k else self.rng.choice(ix, self.k, replace=True)
            groups.append([ix[i:i + self.k].tolist() for i in range(0, len(ix) - self.k + 1, self.k)])
        for _ in range(len(self)):
            avail = [c for c, g in enumerate(groups) if g]
            if len(avail) < self.p:
                return
            batch = []
            for c in self.rng.choice(avail, self.p, replace=False):
                batch += groups[c].pop()
            yield batch


# -- augmentation (batched, on [0, 1] float pixels) ------------------------------------------
_ERASE_FILL = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)  # Zhong et al.'s fill (ImageNet-ish mean)


def augment(x: torch.Tensor, gen: torch.Generator, erasing_prob: float = 0.5,
            grayscale_prob: float = 0.0) -> torch.Tensor:
    """Random horizontal flip, zero pad (h/25) and random crop back to size, random erasing
    (area 2-40%, aspect 0.3-3.3) with probability ``erasing_prob``: the bag-of-tricks pipeline;
    then, with ``grayscale_prob``, the image's luminance in all three channels."""
    n, _, h, w = x.shape
    if grayscale_prob > 0:
        gray = torch.rand(n, generator=gen) < grayscale_prob
        luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(x)
        x = torch.where(gray.view(n, 1, 1, 1), luma, x)
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    pad = max(1, round(h / 25.6))
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    for i in range(n):
        if torch.rand((), generator=gen) >= erasing_prob:
            continue
        for _ in range(100):
            area = h * w * (0.02 + 0.38 * torch.rand((), generator=gen).item())
            aspect = math.exp(math.log(0.3) + (math.log(1 / 0.3) - math.log(0.3)) * torch.rand((), generator=gen).item())
            eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if eh < h and ew < w:
                y0 = int(torch.randint(0, h - eh + 1, (), generator=gen))
                x0 = int(torch.randint(0, w - ew + 1, (), generator=gen))
                x[i, :, y0:y0 + eh, x0:x0 + ew] = _ERASE_FILL.to(x)
                break
    return x


# -- losses -----------------------------------------------------------------------------------
def batch_hard_triplet(feats: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Triplet loss with batch-hard mining (Hermans et al. 2017): per anchor the farthest
    positive and the nearest negative, Euclidean distance on the raw features."""
    sq = feats.pow(2).sum(1, keepdim=True)
    dist = (sq + sq.T - 2 * feats @ feats.T).clamp_min(1e-12).sqrt()  # cdist's gradient is NaN at 0
    same = labels[:, None] == labels[None, :]
    hardest_pos = dist.masked_fill(~same, float("-inf")).max(1).values
    hardest_neg = dist.masked_fill(same, float("inf")).min(1).values
    return F.margin_ranking_loss(hardest_neg, hardest_pos, torch.ones_like(hardest_pos), margin=margin)


def lr_lambda(steps_per_epoch: int, warmup_epochs: float, warmup_factor: float, milestones, gamma: float):
    """Per-step LR factor: linear warm-up from ``warmup_factor`` to 1, then x ``gamma`` at each milestone epoch."""
    def factor(step: int) -> float:
        epoch = step / steps_per_epoch
        if epoch < warmup_epochs:
            return warmup_factor + (1 - warmup_factor) * epoch / warmup_epochs
        return gamma ** sum(epoch >= m for m in milestones)
    return factor


# -- the run ----------------------------------------------------------------------------------
@dataclass
class TrainResult:
    out: Path
    history: list[dict]  # per epoch: loss, id_loss, triplet_loss, accuracy, lr, seconds
    seconds: float
    num_ids: int
    num_images: int


def train(args: BaselineArguments, progress: bool = True) -> TrainResult:
    """Train a baseline and install it at ``args.out`` (built in a temporary sibling, then renamed,
    so an interrupted run never replaces a good folder with half of one)."""
    from chatreid.atomic import building

    args.check()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t_load = time.time()
    data = load_train_data(args)
    log.info("%s: %d train images of %d identities, decoded in %.1f s", data.source, len(data.labels),
             data.num_ids, time.time() - t_load)

    model = ReIDBaseline(args.backbone, data.num_ids, pretrained=args.pretrained).to(device)
    model = model.to(memory_format=torch.channels_last)  # about 1.4x faster on CPU, same results
    sampler = PKSampler(data.labels, args.ids_per_batch, args.images_per_id, seed=args.seed)
    steps_per_epoch = len(sampler)
    total = steps_per_epoch * args.epochs if args.max_steps is None else min(args.max_steps, steps_per_epoch * args.epochs)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                           weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(steps_per_epoch, args.warmup_epochs, args.warmup_factor,
                                                             args.milestone_epochs(), args.gamma))
    id_loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)

    from tqdm import tqdm

    history, step, t0 = [], 0, time.time()
    bar = tqdm(total=total, desc="baseline", unit="step", disable=not progress)
    model.train()
    for epoch in range(args.epochs):
        sums, n, t_epoch = {"loss": 0.0, "id_loss": 0.0, "triplet_loss": 0.0, "accuracy": 0.0}, 0, time.time()
        for batch in sampler:
            if step >= total:
                break
            idx = torch.tensor(batch)
            x = augment(data.pixels[idx].float().div_(255), gen, args.erasing_prob, args.grayscale_prob)
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            y = data.labels[idx].to(device)
            logits, feats = model(x)
            id_loss = id_loss_fn(logits, y)
            tri_loss = batch_hard_triplet(feats, y, args.margin)
            loss = id_loss + tri_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            n += 1
            for k, v in (("loss", loss), ("id_loss", id_loss), ("triplet_loss", tri_loss),
                         ("accuracy", (logits.argmax(1) == y).float().mean())):
                sums[k] += float(v.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", epoch=epoch)
        if n:
            history.append({"epoch": epoch + 1, "step": step, **{k: round(v / n, 5) for k, v in sums.items()},
                            "lr": opt.param_groups[0]["lr"], "seconds": round(time.time() - t_epoch, 2)})
            log.info("epoch %d: %s", epoch + 1, history[-1])
        if step >= total:
            break
    bar.close()
    seconds = time.time() - t0

    config = {
        "backbone": args.backbone, "num_classes": data.num_ids, "image_size": list(args.size()),
        "feature_dim": model.feature_dim, "feature": "bnneck",
        "training": {**{k: v for k, v in asdict(args).items() if k not in ("hub_token", "out", "device")},
                     "milestones": args.milestone_epochs(), "source": data.source, "datasets": data.datasets,
                     "trials": data.trials,
                     "num_images": len(data.labels), "steps": step, "seconds": round(seconds, 1),
                     "device": str(device), "torch": torch.__version__, "cpu_threads": torch.get_num_threads()},
    }
    out = Path(args.out)
    with building(out) as tmp:
        save_baseline(model.to(memory_format=torch.contiguous_format).cpu(), config, tmp,
                      model_card(config, history, args.hub_model_id))
        (tmp / "training_log.json").write_text(json.dumps(history, indent=1) + "\n")
    return TrainResult(out, history, seconds, data.num_ids, len(data.labels))


def model_card(config: dict, history: list[dict], repo_id: str | None = None) -> str:
    """README.md of a baseline folder: Hub front matter, what it is, how it was trained, how to use it."""
    t = config["training"]
    last = history[-1] if history else {}
    front = ["---", "library_name: pytorch", "pipeline_tag: image-feature-extraction", "tags:", "- chatreid",
             "- person-re-identification", "- reid-baseline", f"- {config['backbone']}", "---"]
    source = t["source"]
    lines = front + [
        "", f"# ChatReID Re-ID baseline ({config['backbone']})", "",
        "The strong Re-ID baseline of Luo et al. (2019, \"bag of tricks\"), trained with `train/baseline.py` of the "
        "ChatReID project. ChatReID uses it as the pre-filter that shrinks a gallery before the VLM scores it "
        "(paper section 4.1).", "",
        "## Use", "", "```bash", f"python eval/run.py --prefilter {repo_id or 'PATH_TO_THIS_FOLDER'} ...", "```", "",
        "```python", "from chatreid.baseline import load_baseline",
        f"baseline = load_baseline(\"{repo_id or 'PATH_TO_THIS_FOLDER'}\")",
        "features = baseline.encode(pil_images)   # (N, %d) L2-normalised BNNeck features" % config["feature_dim"],
        "```", "",
        "## Training", "",
        f"- data: {source} (train split; {t['num_images']} images of {config['num_classes']} identities; "
        f"datasets: {', '.join(t['datasets'])})",
        f"- backbone: `{config['backbone']}`, {'ImageNet' if t['pretrained'] else 'random'} initialisation; "
        f"input {config['image_size'][0]}x{config['image_size'][1]}",
        f"- losses: cross-entropy with label smoothing {t['label_smoothing']} on BNNeck logits + batch-hard "
        f"triplet (margin {t['margin']}) on pre-BNNeck features",
        f"- batches: PK sampling, P={t['ids_per_batch']} identities x K={t['images_per_id']} images; "
        f"random flip, pad-and-crop, random erasing p={t['erasing_prob']}"
        + (f", random grayscale p={t['grayscale_prob']}" if t.get("grayscale_prob") else ""),
        f"- optimiser: Adam lr {t['lr']}, weight decay {t['weight_decay']}, warm-up {t['warmup_epochs']} epochs "
        f"from x{t['warmup_factor']}, x{t['gamma']} at epochs {t['milestones']}",
        f"- {t['epochs']} epochs ({t['steps']} steps), seed {t['seed']}; {t['seconds']} s on {t['device']} "
        f"({t['cpu_threads']} CPU threads, {platform.processor() or platform.machine()}, torch {t['torch']})",
        "", "## Results", "",
        f"- final epoch: loss {last.get('loss', 'n/a')}, ID loss {last.get('id_loss', 'n/a')}, triplet loss "
        f"{last.get('triplet_loss', 'n/a')}, train accuracy {last.get('accuracy', 'n/a')}",
        "- per-epoch log: `training_log.json`; retrieval figures: evaluate with `eval/run.py --prefilter` "
        "(docs/evaluation.md)",
    ]
    return "\n".join(lines) + "\n"

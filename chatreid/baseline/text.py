"""The text-to-image pre-filter: a dual encoder trained contrastively on the store's captions.

Text queries have no image to compare with the gallery, so without this the VLM scores every
gallery image for every caption (CUHK-PEDES: 6,156 x 3,074, about 19 million pairs). This
model ranks the gallery for a caption cheaply; the VLM re-scores only the top of it.

- Image side: the Re-ID baseline (``train/baseline.py``), frozen; its L2-normalised BNNeck
  features (the very features the image pre-filter caches for a gallery) go through a small
  MLP into the joint space. Gallery features are therefore computed once and shared by image
  and text queries.
- Text side: a bag of word unigrams and bigrams (lower-cased ``[a-z0-9]+`` words; the bigram
  "red shirt" keeps which colour goes with which garment, which a bag of single words loses)
  averaged by an ``EmbeddingBag``, then an MLP. No tokenizer download, trains on CPU in seconds.
- Loss: symmetric InfoNCE with a learned temperature (CLIP); captions and images of the same
  identity in one batch are all positives (a multi-positive target), so a batch never pushes
  apart two views of one person.

Saved as a folder: ``config.json`` (``model_type: chatreid-text-image-prefilter``),
``model.safetensors``, ``vocab.json``, ``README.md`` and ``image_encoder/`` (a copy of the
baseline), so one folder or Hub id is the whole pre-filter.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from chatreid.baseline.model import (CONFIG, WEIGHTS, Baseline, BaselineError, load_baseline, read_config,
                                     resolve)

log = logging.getLogger(__name__)

MODEL_TYPE = "chatreid-text-image-prefilter"
IMAGE_ENCODER = "image_encoder"
VOCAB = "vocab.json"
_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Words and adjacent word pairs of ``text``: "a red shirt" -> a, red, shirt, a_red, red_shirt."""
    words = _WORD.findall(text.lower())
    return words + [f"{a}_{b}" for a, b in zip(words, words[1:])]


class Vocabulary:
    """Token -> id; id 0 is every token not seen (at least ``min_count`` times) in training."""

    def __init__(self, itos: list[str]):
        self.itos = ["<unk>"] + [t for t in itos if t != "<unk>"]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, texts, min_count: int = 2) -> "Vocabulary":
        counts = Counter(t for text in texts for t in tokens(text))
        return cls(sorted(t for t, c in counts.items() if c >= min_count))

    def __len__(self) -> int:
        return len(self.itos)

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, offsets) for ``nn.EmbeddingBag``; an empty text is the single id 0."""
        ids, offsets = [], []
        for text in texts:
            offsets.append(len(ids))
            ids += [self.stoi.get(t, 0) for t in tokens(text)] or [0]
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))


class DualEncoder(nn.Module):
    """Projects (frozen) image features and bag-of-n-gram text into one L2-normalised space."""

    def __init__(self, vocab_size: int, image_dim: int, dim: int = 256):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean")
        self.text_head = _mlp(dim, dim)
        self.image_head = _mlp(image_dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def text(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(self.embed(ids, offsets)), dim=-1)

    def image(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_head(feats), dim=-1)


def info_nce(img: torch.Tensor, txt: torch.Tensor, pids: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE; every pair of the same identity in the batch is a positive."""
    logits = logit_scale.exp().clamp(max=100) * img @ txt.T
    target = (pids[:, None] == pids[None, :]).float()
    target = target / target.sum(1, keepdim=True)
    return (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
            + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean()) / 2


class TextImagePrefilter:
    """A loaded dual encoder: ``baseline`` (the image pre-filter), ``text_features(texts)``,
    ``image_features(baseline_features)``, both in the joint space, L2-normalised numpy."""

    def __init__(self, model: DualEncoder, vocab: Vocabulary, baseline: Baseline, config: dict, source: str = ""):
        self.model, self.vocab, self.baseline, self.config, self.source = model.eval(), vocab, baseline, config, source
        self._gallery = (None, None)  # (baseline features array, its projection): thousands of captions, one gallery

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        ids, offsets = self.vocab.batch(list(texts))
        return self.model.text(ids, offsets).numpy()

    @torch.no_grad()
    def image_features(self, baseline_features: np.ndarray) -> np.ndarray:
        return self.model.image(torch.as_tensor(baseline_features, dtype=torch.float32)).numpy()

    def similarity(self, text: str, baseline_features: np.ndarray) -> np.ndarray:
        """Cosine of the caption to each gallery image, from the gallery's baseline features
        (projected once per features array: the engine passes the same cached array each time)."""
        if self._gallery[0] is not baseline_features:
            self._gallery = (baseline_features, self.image_features(baseline_features))
        return self._gallery[1] @ self.text_features([text])[0]


def is_text_prefilter(folder: Path) -> bool:
    try:
        return json.loads((folder / CONFIG).read_text()).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def load_text_prefilter(path_or_id: str | os.PathLike, device=None) -> TextImagePrefilter:
    from safetensors.torch import load_file

    folder = resolve(path_or_id, "text-to-image pre-filter")
    cfg = read_config(folder, MODEL_TYPE, "text-to-image pre-filter")
    for name in (WEIGHTS, VOCAB):
        if not (folder / name).is_file():
            raise BaselineError(f"{folder}: {name} is missing")
    try:
        vocab = Vocabulary(json.loads((folder / VOCAB).read_text()))
    except (ValueError, TypeError) as err:
        raise BaselineError(f"{folder / VOCAB}: not a JSON list of tokens ({err})") from None
    baseline = load_baseline(folder / IMAGE_ENCODER, device)
    model = DualEncoder(len(vocab), baseline.model.feature_dim, cfg.get("dim", 256))
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
    except RuntimeError as err:
        raise BaselineError(f"{folder / WEIGHTS}: weights do not fit config.json ({str(err).splitlines()[0]})") from None
    return TextImagePrefilter(model, vocab, baseline, cfg, str(path_or_id))


# -- training -------------------------------------------------------------------------------
@dataclass
class TextPrefilterArguments:
    """Options of ``train/text_prefilter.py``."""

    baseline: str = field(metadata={"help": "The image side: a baseline folder or Hub id (train/baseline.py)."})
    out: str = field(metadata={"help": "Folder to write the dual encoder to (replaced atomically)."})
    store: str | None = field(default=None, metadata={"help": "Image store with captions (train split trains)."})
    dataset: str | None = field(default=None, metadata={"help": "Instead of --store: NAME[,key=value...]:PATH."})
    dim: int = 256
    epochs: int = 60
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    min_count: int = field(default=2, metadata={"help": "Tokens seen fewer times in training are unknown."})
    top_k: str = field(default="1,5,10,20,50", metadata={"help": "Recall@k reported on the held-out gallery."})
    seed: int = 0
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private_repo: bool | None = None
    hub_token: str | None = None

    def ks(self) -> list[int]:
        try:
            ks = sorted({int(k) for k in self.top_k.split(",")})
        except ValueError:
            raise ValueError(f"--top_k: expected comma-separated integers, got {self.top_k!r}") from None
        if not ks or ks[0] < 1:
            raise ValueError(f"--top_k: every k must be >= 1, got {self.top_k!r}")
        return ks


def captioned_images(store: str | None, dataset: str | None):
    """(PIL loader, records as dicts with split, pid, dataset, captions) of every captioned image."""
    if (store is None) == (dataset is None):
        raise ValueError("give exactly one of --store (an image store) and --dataset (NAME:PATH)")
    if store is not None:
        from chatreid.data.store import ImageStore

        st = ImageStore.load(store)
        meta = st.metadata()
        rows = [{"id": meta["image_id"][i], "split": meta["split"][i], "pid": meta["pid"][i],
                 "dataset": meta["dataset"][i], "captions": meta["captions"][i]}
                for i in range(len(meta["image_id"])) if meta["captions"][i]]
        return (lambda row: st.image(row["id"])), rows, f"image store {store}"
    from PIL import Image

    from chatreid.data import read
    from chatreid.data.store import parse_source

    name, root, options = parse_source(dataset)
    rows = [{"id": r.path, "split": r.split, "pid": r.pid, "dataset": r.dataset, "captions": list(r.captions)}
            for r in read(name, root, **options) if r.captions]

    def load(row):
        with Image.open(row["id"]) as im:
            return im.convert("RGB")

    return load, rows, f"{name} at {root}"


def recall_at_k(text_feats: np.ndarray, q_pids, gallery_feats: np.ndarray, g_pids, ks) -> dict[int, float]:
    """Share of text queries with an image of their identity among the k most similar (CMC@k)."""
    from chatreid.metrics import evaluate_reid

    res = evaluate_reid(text_feats @ gallery_feats.T, list(q_pids), list(g_pids), protocol="t2i",
                        ranks=ks, similarity=True)
    return {k: float(res["cmc"][k - 1]) for k in ks}


def train_text_prefilter(args: TextPrefilterArguments, progress: bool = True) -> dict:
    """Train on the captions of the train split; report recall@k on the held-out captioned
    images (the gallery split), if any; install the folder at ``args.out``. Returns the report."""
    ks = args.ks()
    torch.manual_seed(args.seed)
    baseline = load_baseline(args.baseline)
    load, rows, source = captioned_images(args.store, args.dataset)
    train_rows = [r for r in rows if r["split"] == "train" and r["pid"] >= 0]
    test_rows = [r for r in rows if r["split"] != "train"]
    if not train_rows:
        raise ValueError(f"{source}: no captioned train images to learn from")
    t0 = time.time()
    feats = {}
    for part in (train_rows, test_rows):
        for i in range(0, len(part), 256):
            chunk = part[i:i + 256]
            for row, f in zip(chunk, baseline.encode([load(r) for r in chunk])):
                feats[id(row)] = f
    encode_seconds = time.time() - t0

    vocab = Vocabulary.build((c for r in train_rows for c in r["captions"]), args.min_count)
    pair_img = torch.tensor(np.stack([feats[id(r)] for r in train_rows for _ in r["captions"]]))
    pair_txt = [c for r in train_rows for c in r["captions"]]
    names = {k: n for n, k in enumerate(sorted({(r["dataset"], r["pid"]) for r in train_rows}))}
    pair_pid = torch.tensor([names[(r["dataset"], r["pid"])] for r in train_rows for _ in r["captions"]])
    ids_offsets = [vocab.batch([t]) for t in pair_txt]  # tokenised once

    model = DualEncoder(len(vocab), baseline.model.feature_dim, args.dim)
    t1 = time.time()
    history = _fit(model, pair_img, pair_txt, pair_pid, ids_offsets, args, progress)
    train_seconds = time.time() - t1

    pre = TextImagePrefilter(model, vocab, baseline, {})
    report = {"source": source, "train_images": len(train_rows), "train_captions": len(pair_txt),
              "vocab": len(vocab), "encode_seconds": round(encode_seconds, 1),
              "train_seconds": round(train_seconds, 1), "history": history}
    captions = [(c, r["pid"]) for r in test_rows for c in r["captions"]]
    if test_rows and captions:
        g = pre.image_features(np.stack([feats[id(r)] for r in test_rows]))
        q = pre.text_features([c for c, _ in captions])
        report["held_out"] = {"queries": len(captions), "gallery": len(test_rows),
                              "recall": recall_at_k(q, [p for _, p in captions], g, [r["pid"] for r in test_rows], ks),
                              "chance": {k: round(_chance(k, [p for _, p in captions], [r["pid"] for r in test_rows]), 4)
                                         for k in ks}}
        log.info("held-out recall@k: %s (chance %s)", report["held_out"]["recall"], report["held_out"]["chance"])

    config = {"model_type": MODEL_TYPE, "dim": args.dim, "image_dim": baseline.model.feature_dim,
              "vocab_size": len(vocab), "tokens": "lower-cased [a-z0-9]+ words and adjacent word pairs",
              "image_encoder": IMAGE_ENCODER, "baseline": args.baseline,
              "training": {k: v for k, v in asdict(args).items() if k not in ("hub_token", "out")},
              "report": {k: v for k, v in report.items() if k != "history"}}
    out = _install(model, vocab, config, history, args)
    report["out"] = str(out)
    return report


def _fit(model: "DualEncoder", pair_img, pair_txt: list[str], pair_pid, ids_offsets, args: TextPrefilterArguments,
         progress: bool) -> list[dict]:
    """Symmetric InfoNCE over (image, caption) pairs, one-cycle AdamW; the per-epoch mean losses."""
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * math.ceil(len(pair_txt) / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    model.train()
    for epoch in range(args.epochs):
        order, total, n = torch.randperm(len(pair_txt), generator=gen), 0.0, 0
        for b in range(0, len(order), args.batch_size):
            idx = order[b:b + args.batch_size]
            ids = [ids_offsets[int(i)][0] for i in idx]
            offsets = torch.tensor([0] + [len(x) for x in ids[:-1]]).cumsum(0)
            loss = info_nce(model.image(pair_img[idx]), model.text(torch.cat(ids), offsets), pair_pid[idx],
                            model.logit_scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + float(loss.detach()), n + 1
        history.append({"epoch": epoch + 1, "loss": round(total / n, 5)})
        if progress and (epoch + 1) % 10 == 0:
            log.info("text pre-filter epoch %d: loss %.4f", epoch + 1, total / n)
    return history


def _install(model: "DualEncoder", vocab: "Vocabulary", config: dict, history: list[dict],
             args: TextPrefilterArguments) -> Path:
    """Write the folder beside ``args.out`` and rename it into place: a failed save leaves the old one."""
    from safetensors.torch import save_file

    from chatreid.atomic import building

    out = Path(args.out)
    with building(out) as tmp:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS),
                  metadata={"format": "pt"})
        (tmp / VOCAB).write_text(json.dumps(vocab.itos[1:]))
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "training_log.json").write_text(json.dumps(history) + "\n")
        shutil.copytree(resolve(args.baseline), tmp / IMAGE_ENCODER, ignore=shutil.ignore_patterns(".*"))
        (tmp / "README.md").write_text(model_card(config, args.hub_model_id))
    return out


def _chance(k: int, q_pids, g_pids) -> float:
    """Expected recall@k of a random ranking: 1 - C(n - m, k) / C(n, k), m = the query's images."""
    n, counts = len(g_pids), Counter(g_pids)
    k = min(k, n)
    return float(np.mean([1 - math.comb(n - counts[p], k) / math.comb(n, k) for p in q_pids]))


def model_card(config: dict, repo_id: str | None = None) -> str:
    t, rep = config["training"], config["report"]
    where = repo_id or "PATH_TO_THIS_FOLDER"
    lines = ["---", "library_name: pytorch", "tags:", "- chatreid", "- person-re-identification",
             "- text-to-image-retrieval", "---", "",
             "# ChatReID text-to-image pre-filter", "",
             "A dual encoder that ranks a gallery for a caption, so that ChatReID's VLM re-scores only the top of "
             "it (`eval/run.py --protocol t2i --prefilter THIS --top-k K`). Image side: the Re-ID baseline in "
             "`image_encoder/` (frozen) plus an MLP; text side: a bag of word unigrams and bigrams plus an MLP; "
             "trained with symmetric InfoNCE on the store's captions (`train/text_prefilter.py`).", "",
             "## Use", "", "```python", "from chatreid.baseline.text import load_text_prefilter",
             f"pre = load_text_prefilter(\"{where}\")",
             "sim = pre.similarity(caption, pre.baseline.encode(gallery_images))", "```", "",
             "## Training", "",
             f"- data: {rep['source']}: {rep['train_captions']} captions of {rep['train_images']} train images; "
             f"vocabulary {config['vocab_size']} tokens (min count {t['min_count']})",
             f"- joint space {config['dim']}-d; {t['epochs']} epochs, batch {t['batch_size']}, AdamW lr {t['lr']} "
             f"(one-cycle), seed {t['seed']}; {rep['train_seconds']} s (+ {rep['encode_seconds']} s encoding images)",
             f"- image encoder: `{config['baseline']}`", "", "## Results (held-out identities)", ""]
    held = rep.get("held_out")
    if held:
        lines += [f"{held['queries']} captions against {held['gallery']} images:", "",
                  "| k | recall@k | random |", "|---:|---:|---:|"]
        lines += [f"| {k} | {100 * v:.1f}% | {100 * held['chance'][k]:.1f}% |" for k, v in held["recall"].items()]
    else:
        lines.append("- no held-out captioned images in the source")
    return "\n".join(lines) + "\n"

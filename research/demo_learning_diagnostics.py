"""Why the demo model does not learn to use images: small, fast diagnostics on CPU.

Usage:  OMP_NUM_THREADS=2 python research/demo_learning_diagnostics.py [probe|rope|overfit|generalize|all]
            [--steps N] [--variants base,scaled,vislr10] [--lr X] [--n ROWS]
        OMP_NUM_THREADS=2 python research/demo_learning_diagnostics.py features --checkpoints DIR [DIR ...]
        OMP_NUM_THREADS=2 python research/demo_learning_diagnostics.py pairs --init DIR [--data ROWS]
            [--train-store STORE] [--steps N] [--lr X] [--every N] [--curriculum duplicate:800,pair:1400]

Loads runs/demo/base (the randomly initialised demo Qwen2-VL) and batches built by
chatreid.training.ReIDCollator from runs/demo/data/stage{1,2} and runs/demo/store, and runs:

  probe   (1) gradients per part after one backward on a stage-1 batch (stock vs batched vision
              attention), requires_grad per part, logit sensitivity to pixel_values, image vs text
              embedding norms, how distinct the image features of different images are at init.
  rope    (5) the M-RoPE position ids the model uses for image tokens in one stage-2 row.
  overfit (2)+(3)+(4) a tiny image-only task: 16 stage-2 i2i_one_to_one rows (identical text; the
              Yes/No answer depends only on the two images). Trains with AdamW on the 16 rows and
              compares the loss with the right images against a control whose image pairs are
              shuffled across rows each step (labels then carry no image information). Variants:
              base / merger output scaled to text-embedding norm / different learning rates.
  generalize (2b)+(3)+(4) train on stage-1 train rows (batch 8, warmup 10 then constant lr), then
              held-out loss with right vs shuffled images, all answer tokens and colour-word tokens;
              variants base / scaled (merger output at text-embedding norm) / vislr10 (10x lr on
              vision tower + merger).
  features (8) held-out same/other image pairs (the demo store's test identities) separated by
              the cosine of each checkpoint's own image features, no decoder: raw pixels beside.
  pairs   (9) train on i2i_one_to_one rows only and print the held-out AUC of P(Yes) as it trains;
              with --curriculum, positives first as exact or augmented duplicates.
Prints its findings; see docs/demo-learning.md for the recorded numbers and the verdict.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets import load_from_disk  # noqa: E402

from chatreid import prompts  # noqa: E402
from chatreid.data.store import ImageStore  # noqa: E402
from chatreid.demo.separation import region_features  # noqa: E402
from chatreid.metrics import pair_auc as auc  # noqa: E402
from chatreid.model import load_model_and_processor  # noqa: E402
from chatreid.model.fast import enable_batched_vision_attention  # noqa: E402
from chatreid.model.surgery import part_of  # noqa: E402
from chatreid.training.collate import ReIDCollator  # noqa: E402

BASE = REPO / "runs/demo/base"
STORE = REPO / "runs/demo/store"
DATA = REPO / "runs/demo/data"


def load():
    model, proc = load_model_and_processor(str(BASE), dtype=torch.float32)
    return model, proc


def image_features(model, pv, grid):
    out = model.model.get_image_features(pv, grid)
    out = getattr(out, "pooler_output", out)
    return torch.cat(list(out)) if isinstance(out, (list, tuple)) else out


def probe(store):
    model, proc = load()
    rows = load_from_disk(str(DATA / "stage1"))["train"]
    col = ReIDCollator(proc, store, 1)
    b = col([rows[i] for i in range(4)])
    print("[probe] batch", {k: tuple(v.shape) for k, v in b.items()})
    model.train()
    for batched in (False, True):
        if batched:
            enable_batched_vision_attention(model)
        model.zero_grad()
        out = model(**b)
        out.loss.backward()
        g = {}
        for n, p in model.named_parameters():
            s = g.setdefault(part_of(n), [0.0, 0, 0, 0])
            s[1] += 1
            s[2] += int(p.requires_grad)
            if p.grad is not None and p.grad.abs().sum() > 0:
                s[0] += p.grad.norm().item() ** 2
                s[3] += 1
        print(f"[probe] batched_attention={batched} loss={out.loss.item():.4f}")
        for part, (sq, n, rg, nz) in g.items():
            print(f"    {part:15s} grad_norm={sq ** .5:.4f} params={n} requires_grad={rg} nonzero_grad={nz}")
    model.eval()
    with torch.no_grad():
        l1 = model(**b).logits
        l2 = model(**{**b, "pixel_values": torch.randn_like(b["pixel_values"])}).logits
        print(f"[probe] max |logit change| with random pixel_values: {(l1 - l2).abs().max().item():.3f}")
        b16 = col([rows[i] for i in range(16)])
        ie = image_features(model, b16["pixel_values"], b16["image_grid_thw"]).view(16, -1, model.config.text_config.hidden_size)
        te = model.get_input_embeddings().weight
        f = torch.nn.functional.normalize(ie.flatten(1), dim=-1)
        print(f"[probe] image-token norm {ie.norm(dim=-1).mean().item():.3f}, text-embedding norm "
              f"{te.norm(dim=-1).mean().item():.3f}, mean cosine between different images' features "
              f"{((f @ f.T).sum() - 16).item() / 240:.3f}")


def rope(store):
    model, proc = load()
    rows = load_from_disk(str(DATA / "stage2"))["train"]
    row = next(r for r in rows if r["task"] == "i2i_one_to_one")
    b = ReIDCollator(proc, store, 2)([row])
    ids = b["input_ids"][0]
    pos, _ = model.model.get_rope_index(b["input_ids"], b["mm_token_type_ids"], b["image_grid_thw"],
                                        attention_mask=b["attention_mask"])
    img = (ids == proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")).nonzero().flatten()
    print("[rope] grid_thw", b["image_grid_thw"].tolist(), "image tokens", len(img))
    print("[rope] first image: t/h/w ranges", [(int(pos[a, 0, img[:len(img) // 2]].min()), int(pos[a, 0, img[:len(img) // 2]].max())) for a in range(3)])
    print("[rope] positions of the last 8 tokens (t,h,w):", pos[:, 0, -8:].tolist())
    print("[rope] seq len", len(ids), "max position", int(pos.max()))


def shuffle_images(pv, grid, g):
    """Permute whole images among those of the same grid size (so every row keeps valid shapes)."""
    sizes = grid.prod(-1).tolist()
    chunks = list(torch.split(pv, sizes))
    keys = [tuple(t) for t in grid.tolist()]
    out = list(chunks)
    for key in set(keys):
        idx = [i for i, k in enumerate(keys) if k == key]
        perm = torch.randperm(len(idx), generator=g).tolist()
        for i, j in zip(idx, perm):
            out[i] = chunks[idx[j]]
    return torch.cat(out)


def overfit(store, steps=60, variants=("base",), n=16):
    rows = load_from_disk(str(DATA / "stage2"))["train"]
    pool = [r for r in rows if r["task"] == "i2i_one_to_one"]
    ans = lambda r: r["messages"][-1]["content"][0]["text"]  # noqa: E731
    rows = [r for r in pool if ans(r) == "Yes"][:n // 2] + [r for r in pool if ans(r) == "No"][:n - n // 2]
    yes = sum(r["messages"][-1]["content"][0]["text"] == "Yes" for r in rows)
    print(f"[overfit] {n} i2i_one_to_one rows, {yes} Yes; texts identical, answer depends on the images only")
    for variant in variants:
        for control in (False, True):
            torch.manual_seed(0)
            model, proc = load()
            enable_batched_vision_attention(model)
            col = ReIDCollator(proc, store, 2)
            batch = col(rows)
            lr = 1e-3
            if variant.startswith("lr"):
                lr = float(variant[2:])
            if variant == "scaled":  # scale merger output to the text embedding norm
                te_norm = model.get_input_embeddings().weight.norm(dim=-1).mean().detach()

                def hook(mod, inp, out):
                    return out * (te_norm / out.norm(dim=-1, keepdim=True).clamp_min(1e-6))
                model.model.visual.merger.register_forward_hook(hook)
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
            model.train()
            t0 = time.time()
            g = torch.Generator().manual_seed(1)
            log = []
            for step in range(steps):
                b = batch
                if control:  # shuffle whole images across the batch (equal sizes): labels lose image info
                    b = {**batch, "pixel_values": shuffle_images(batch["pixel_values"], batch["image_grid_thw"], g)}
                out = model(**b)
                opt.zero_grad()
                out.loss.backward()
                opt.step()
                log.append(out.loss.item())
                if step % 10 == 9 or step == steps - 1:
                    with torch.no_grad():
                        ie = image_features(model, batch["pixel_values"], batch["image_grid_thw"])
                    print(f"[overfit] variant={variant} {'shuffled' if control else 'real    '} step {step + 1:3d} "
                          f"loss {sum(log[-10:]) / len(log[-10:]):.4f} (ln2={math.log(2):.4f}) img_norm "
                          f"{ie.norm(dim=-1).mean().item():.2f} ({time.time() - t0:.0f}s)", flush=True)


COLOURS = {"red", "blue", "green", "yellow", "black", "white", "grey", "gray", "brown", "pink", "purple",
           "orange", "navy", "beige", "khaki", "maroon", "teal", "olive", "cyan", "tan", "dark", "light"}


def token_losses(model, b):
    logits = model(**b).logits[:, :-1]
    labels = b["labels"][:, 1:]
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=-100, reduction="none").view(labels.shape)
    return ce, labels


def generalize(store, steps=150, lr=1e-3, bs=8, variant="base"):
    """(2b) Stage-1 captions: train on the train split, measure held-out loss with right vs shuffled
    images, over all answer tokens and over colour-word tokens only (the image-dependent ones)."""
    torch.manual_seed(0)
    model, proc = load()
    enable_batched_vision_attention(model)
    data = load_from_disk(str(DATA / "stage1"))
    train, val = data["train"].shuffle(seed=0), data["validation"]
    col = ReIDCollator(proc, store, 1)
    tok = proc.tokenizer
    colour_ids = torch.tensor([i for i in range(len(tok)) if tok.decode([i]).strip().lower() in COLOURS])
    if variant == "scaled":  # merger output rescaled to the text-embedding norm
        te_norm = model.get_input_embeddings().weight.norm(dim=-1).mean().detach()
        model.model.visual.merger.register_forward_hook(
            lambda mod, inp, out: out * (te_norm / out.norm(dim=-1, keepdim=True).clamp_min(1e-6)))
    vis = [p for n, p in model.named_parameters() if part_of(n) != "decoder"]
    dec = [p for n, p in model.named_parameters() if part_of(n) == "decoder"]
    mult = 10.0 if variant == "vislr10" else 1.0
    opt = torch.optim.AdamW([{"params": vis, "mult": mult}, {"params": dec, "mult": 1.0}], lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    vb = [col([val[j] for j in range(i, min(i + 16, len(val), 48))]) for i in range(0, min(len(val), 48), 16)]

    def evaluate(tag):
        model.eval()
        res = {}
        with torch.no_grad():
            for name in ("real", "shuffled"):
                tot = col_tot = n = cn = 0.0
                for b in vb:
                    if name == "shuffled":
                        b = {**b, "pixel_values": shuffle_images(b["pixel_values"], b["image_grid_thw"], g)}
                    ce, labels = token_losses(model, b)
                    m = labels != -100
                    cm = m & torch.isin(labels, colour_ids)
                    tot += ce[m].sum().item(); n += m.sum().item()
                    col_tot += ce[cm].sum().item(); cn += cm.sum().item()
                res[name] = (tot / n, col_tot / max(cn, 1))
        print(f"[generalize] {tag}: held-out loss all tokens real {res['real'][0]:.4f} shuffled {res['shuffled'][0]:.4f}"
              f" | colour tokens ({int(cn)}) real {res['real'][1]:.4f} shuffled {res['shuffled'][1]:.4f}", flush=True)
        model.train()

    model.train()
    t0 = time.time()
    for step in range(steps):
        i = (step * bs) % (len(train) - bs)
        b = col([train[j] for j in range(i, i + bs)])
        cur = lr * min(1.0, (step + 1) / 10)
        for pg in opt.param_groups:
            pg["lr"] = cur * pg["mult"]
        loss = model(**b).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 24 or step == steps - 1:
            print(f"[generalize] variant={variant} lr={lr} step {step + 1} train loss {loss.item():.4f} ({time.time() - t0:.0f}s)", flush=True)
        if step + 1 in (steps // 2, steps):
            evaluate(f"variant={variant} step {step + 1}")


# ----------------------------------------------------------------------------------------------
# (6) where the Re-ID signal is lost: the vision features vs the decoder's comparison
def heldout_pairs(store, layouts=("market", "sysu", "ltcc"), n=100, seed=0):
    """``n`` same-identity and ``n`` other-identity image pairs per layout, from the *test*
    identities (query + gallery) of the demo store: (layout, image a, image b, same)."""
    import random

    meta = store.metadata()
    rng = random.Random(seed)
    pairs = []
    for layout in layouts:
        ds = f"synthpeds_{layout}"
        by_pid: dict = {}
        for i, (d, split) in enumerate(zip(meta["dataset"], meta["split"])):
            if d == ds and split in ("query", "gallery"):
                by_pid.setdefault(meta["pid"][i], []).append(meta["image_id"][i])
        pids = sorted(p for p in by_pid if len(by_pid[p]) > 1)
        for _ in range(n):
            p = rng.choice(pids)
            a, b = rng.sample(by_pid[p], 2)
            other = rng.choice(by_pid[rng.choice([q for q in pids if q != p])])
            pairs += [(layout, a, b, 1), (layout, a, other, 0)]
    return pairs


def pair_auc(pairs, scores) -> str:
    """AUC of same-identity vs other-identity pairs, per layout (0.5: chance)."""
    out = []
    for layout in dict.fromkeys(x[0] for x in pairs):
        pos = [s for s, x in zip(scores, pairs) if x[0] == layout and x[3]]
        neg = [s for s, x in zip(scores, pairs) if x[0] == layout and not x[3]]
        out.append(f"{layout} {auc(pos, neg):.3f}")
    return " ".join(out)


def i2i_template():
    rows = load_from_disk(str(DATA / "stage2"))["train"]
    return next(r for r in rows if r["task"] == "i2i_one_to_one")


def features(store, checkpoints):
    """How well do image features alone separate same from other people (held-out pairs)? Raw
    pixels, then each checkpoint's merged vision tokens pooled to 8 regions
    (``chatreid.demo.separation.region_features``, as the build's report does) compared by cosine. No decoder
    is involved: if these AUCs are well above the P(Yes) AUCs, the comparison the decoder has to
    learn is what fails, not the features."""
    import numpy as np

    pairs = heldout_pairs(store)
    ids = sorted({x for p in pairs for x in p[1:3]})
    pix = {i: np.asarray(store.image(i).convert("RGB").resize((32, 64)), dtype=np.float32).ravel() / 255 for i in ids}
    print(f"[features] {'raw pixels 64x32 (L2)':44s}", pair_auc(pairs, [-float(np.linalg.norm(pix[a] - pix[b]))
                                                                      for _, a, b, _ in pairs]), flush=True)
    for ckpt in checkpoints:
        model, proc = load_model_and_processor(str(ckpt), dtype=torch.float32)
        model.eval()
        f = region_features(model, proc, [store.image(i) for i in ids])
        vec = dict(zip(ids, f))
        print(f"[features] {Path(ckpt).parent.name + '/' + Path(ckpt).name:44s}",
              pair_auc(pairs, [float(vec[a] @ vec[b]) for _, a, b, _ in pairs]), flush=True)


class AugmentedStore:
    """An image store whose ``ID#aug`` images are camera-like changes of image ID: a random crop,
    a per-channel colour cast, brightness, a mirror and sometimes blur (curriculum positives)."""

    def __init__(self, store, seed=1):
        import random

        self.store, self.rng = store, random.Random(seed)

    def image(self, iid):
        from chatreid.training.compare import edit  # the pretraining curriculum's "augment" level

        if not iid.endswith("#aug"):
            return self.store.image(iid)
        return edit(self.store.image(iid[:-4]), "augment", self.rng)

    def __getattr__(self, name):
        return getattr(self.store, name)


def pairs_curve(store, init, data, train_store, steps=1000, lr=1e-3, bs=16, every=250, curriculum=None):
    """Can the model learn "same person?" at all? Train only on stage-2 i2i_one_to_one rows (``data``,
    e.g. ``chatreid build-data --stage 2 --mix i2i_one_to_one=1``), constant lr after 20 warmup
    steps, gradients clipped at norm 1, and print the held-out pair AUC of P(Yes) every ``every``
    steps. ``curriculum`` ("duplicate:800,augmented:800,pair:1400") replaces the positives' second
    image, phase by phase, with the first image itself or an :class:`AugmentedStore` change of it;
    "pair" keeps the real (other-camera) positive."""
    torch.manual_seed(0)
    model, proc = load_model_and_processor(str(init), dtype=torch.float32)
    enable_batched_vision_attention(model)
    rows = load_from_disk(str(data))["train"].filter(lambda r: r["task"] == "i2i_one_to_one").shuffle(seed=0)
    pairs, template = heldout_pairs(store), i2i_template()
    yes, no = (proc.tokenizer.encode(w, add_special_tokens=False)[0] for w in ("Yes", "No"))
    eval_col = ReIDCollator(proc, store, 2)
    col = ReIDCollator(proc, AugmentedStore(ImageStore.load(str(train_store))), 2)
    phases = [(kind, int(n)) for kind, n in (p.split(":") for p in (curriculum or f"pair:{steps}").split(","))]
    if any(kind not in ("pair", "duplicate", "augmented") for kind, _ in phases):
        raise ValueError(f"--curriculum {curriculum!r}: phases are pair, duplicate or augmented")
    kinds = [kind for kind, n in phases for _ in range(n)]

    def evaluate(step, loss):
        model.eval()
        scores = []
        with torch.no_grad():
            for s in range(0, len(pairs), 32):
                chunk = pairs[s:s + 32]
                b = eval_col([{**template, "image_ids": [x[1], x[2]]} for x in chunk])
                logits = model(**{k: v for k, v in b.items() if k != "labels"}).logits
                at = (b["labels"] != -100).float().argmax(1) - 1  # the position that predicts the answer
                scores += torch.softmax(logits[torch.arange(len(chunk)), at][:, [yes, no]], -1)[:, 0].tolist()
        model.train()
        print(f"[pairs] step {step} ({kinds[step - 1] if step else 'start'}) train loss {loss:.3f} (chance "
              f"{math.log(2) / 2:.3f}) held-out AUC {pair_auc(pairs, scores)} ({time.time() - t0:.0f}s)", flush=True)

    def positives_as(batch, kind):
        if kind == "pair":
            return batch
        second = lambda iid: iid + "#aug" if kind == "augmented" else iid  # noqa: E731
        return [{**r, "image_ids": [r["image_ids"][0], second(r["image_ids"][0])]}
                if r["messages"][-1]["content"][0]["text"] == prompts.YES else r for r in batch]

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    t0, ema = time.time(), float("nan")
    evaluate(0, ema)
    for step, kind in enumerate(kinds):
        i = (step * bs) % (len(rows) - bs)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 20)
        loss = model(**col(positives_as([rows[j] for j in range(i, i + bs)], kind))).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # as train/sft.py (TRL's max_grad_norm)
        opt.step()
        ema = loss.item() if math.isnan(ema) else 0.95 * ema + 0.05 * loss.item()
        if (step + 1) % every == 0:
            evaluate(step + 1, ema)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="?", default="all")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--variants", default="base")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--checkpoints", nargs="*", default=[str(BASE)], help="features: models to probe")
    ap.add_argument("--init", default=str(BASE), help="pairs: the model to train")
    ap.add_argument("--data", default=None, help="pairs: stage-2 rows with i2i_one_to_one tasks")
    ap.add_argument("--train-store", default=str(STORE), help="pairs: the image store of --data")
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--curriculum", default=None, help="pairs: e.g. duplicate:800,augmented:800,pair:1400")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    store = ImageStore.load(str(STORE))
    if a.what in ("probe", "all"):
        probe(store)
    if a.what in ("rope", "all"):
        rope(store)
    if a.what in ("generalize", "all"):
        for v in a.variants.split(","):
            generalize(store, a.steps, a.lr, variant=v)
    if a.what in ("overfit", "all"):
        overfit(store, a.steps, tuple(a.variants.split(",")), a.n)
    if a.what == "features":
        features(store, a.checkpoints)
    if a.what == "pairs":
        pairs_curve(store, a.init, a.data or DATA / "stage2", a.train_store, a.steps, a.lr, every=a.every,
                    curriculum=a.curriculum)


if __name__ == "__main__":
    main()

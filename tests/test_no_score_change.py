"""The family refactor changes no score: the shipped demo model's P(Yes) on fixed pairs and the
loss of a fixed tiny training run equal values recorded from the code before the refactor.

``tests/data/refactor_baseline.json`` was written by ``python tests/test_no_score_change.py``
from the commit before the model families moved into ``chatreid/model/families``; re-run it only
on purpose (a change that is meant to move scores), and say so in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tests" / "data" / "refactor_baseline.json"
DEMO = ROOT / "models" / "chatreid-demo"
SIZES = ((128, 64), (256, 128), (160, 96), (300, 150))  # (height, width)


def _images():
    """Fixed images independent of any generator in the project: seeded noise over a gradient."""
    from PIL import Image

    rng = np.random.RandomState(1234)
    out = []
    for k, (h, w) in enumerate(SIZES):
        base = np.linspace(0, 255, h * w * 3).reshape(h, w, 3)
        noise = rng.randint(0, 120, size=(h, w, 3))
        out.append(Image.fromarray(((base + noise + 40 * k) % 256).astype(np.uint8)))
    return out


def demo_scores() -> dict:
    """P(Yes) of the demo model: image pairs through the batched scorer and the naive reference,
    and a caption question."""
    from chatreid.model import load_model_and_processor
    from chatreid.retrieval.scorer import PairScorer, encode, naive_yes_probability

    model, processor = load_model_and_processor(str(DEMO), dtype="float32")
    model.eval()
    images = _images()
    enc = encode(model, processor, images)
    scorer = PairScorer(model, processor)
    batched = scorer.score(enc[1:], query_image=enc[0]).tolist()
    text = scorer.score(enc, text="A man in a red jacket and blue jeans.").tolist()
    naive = [naive_yes_probability(model, processor, [images[0], im]) for im in images[1:]]
    return {"batched": batched, "text": text, "naive": naive}


def tiny_losses(tmp: Path, steps: int = 3) -> list[float]:
    """Losses of a fixed run: the tiny model (seed 0), stage-3 rows of a tiny SynthPeds store,
    the training collator, AdamW at 1e-3, batch 2."""
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from training_data import instructions, rows_of, synthpeds_store

    from chatreid.model import load_model_and_processor
    from chatreid.model.tiny import build_tiny_qwen2vl
    from chatreid.data.store import ImageStore
    from chatreid.training.collate import ReIDCollator

    store_dir = synthpeds_store(tmp / "synth")
    rows = rows_of(instructions(store_dir, tmp / "stage3", 3, size=10), 2 * steps)
    model, processor = load_model_and_processor(str(build_tiny_qwen2vl(tmp / "tiny", seed=0)), dtype="float32")
    collator = ReIDCollator(processor, ImageStore.load(str(store_dir)), policy=3)
    torch.manual_seed(0)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for s in range(steps):
        batch = collator(rows[2 * s:2 * s + 2])
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    return losses


@pytest.fixture(scope="module")
def baseline():
    return json.loads(BASELINE.read_text())


@pytest.mark.skipif(not (DEMO / "model.safetensors").exists(), reason="the demo model is not built")
def test_demo_model_scores_unchanged(baseline):
    now = demo_scores()
    for key, expected in baseline["demo"].items():
        np.testing.assert_allclose(now[key], expected, atol=1e-5, rtol=0, err_msg=key)


def test_tiny_training_losses_unchanged(baseline, tmp_path):
    np.testing.assert_allclose(tiny_losses(tmp_path), baseline["tiny_losses"], atol=1e-5, rtol=0)


if __name__ == "__main__":  # record the baseline (see the module docstring)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        record = {"demo": demo_scores(), "tiny_losses": tiny_losses(Path(tmp))}
    BASELINE.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))

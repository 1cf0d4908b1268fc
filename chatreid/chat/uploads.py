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
import threading
import time
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

class SettingsError(ValueError):
    """A ``CHATREID_*`` setting that cannot be used; the message is one line naming it."""


# Every setting the app reads: name -> (Limits field, default, least allowed value, what it is).
# ``None`` as default: unset means "no limit" (only CHATREID_TOP_K).
SETTINGS = {
    "CHATREID_MAX_FILE_MB": ("max_file_mb", 20, 1, "one upload, MB"),
    "CHATREID_MAX_GALLERY": ("max_gallery", 200, 1, "images in one gallery"),
    "CHATREID_MAX_QUERY_IMAGES": ("max_query_images", 4, 1, "query photos in one message"),
    "CHATREID_MAX_PIXELS": ("max_pixels", 4096 * 4096, 1, "pixels of one uploaded image"),
    "CHATREID_MAX_ZIP_MB": ("max_zip_mb", 200, 1, "unpacked size of one zip, MB"),
    "CHATREID_IMAGE_PIXELS": ("model_pixels", 1024 * 1024, 1024,
                              "pixels the model may read of one image (capped by its processor)"),
    "CHATREID_MAX_MESSAGE_CHARS": ("max_message_chars", 2000, 1, "characters of one message"),
    "CHATREID_MAX_MESSAGE_TOKENS": ("max_message_tokens", 512, 1, "tokens of one message"),
    "CHATREID_REQUEST_SECONDS": ("request_seconds", 300, 1, "one search, seconds"),
    "CHATREID_CONCURRENCY": ("concurrency", 1, 1, "model calls at once"),
    "CHATREID_QUEUE_SIZE": ("queue_size", 64, 1, "waiting requests"),
    "CHATREID_TOP_K": ("top_k", None, 1, "images the model scores"),
    "CHATREID_IDLE_MINUTES": ("idle_minutes", 30, 1, "minutes before an idle session is dropped"),
    "CHATREID_MEMORY_MB": ("memory_mb", 2048, 16, "images held by all sessions together, MB"),
    "CHATREID_MAX_SESSIONS": ("max_sessions", 200, 1, "sessions held at once"),
}
# Settings read elsewhere (model choice, cache, tests); only checked for being non-empty.
OTHER_SETTINGS = ("CHATREID_MODEL", "CHATREID_CACHE", "CHATREID_TEST_HF_HOME",
                  "CHATREID_DOCS_SCREENSHOT", "CHATREID_PREFILTER")
# What a session keeps of an image besides what the model reads: enough for the results
# thumbnails and the pre-filter's 256x128 input.
THUMB_PIXELS = 512 * 256


def _env_int(name: str, least: int) -> int | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a whole number (at least {least}), got {raw!r}") from None
    if value < least:
        raise SettingsError(f"{name} must be at least {least}, got {value}")
    return value


@dataclass
class Limits:
    """Every limit of the app; each can be set by its environment variable (``SETTINGS``)."""

    max_file_mb: int = 20           # CHATREID_MAX_FILE_MB: one upload (launch max_file_size)
    max_gallery: int = 200          # CHATREID_MAX_GALLERY: images in one gallery
    max_query_images: int = 4       # CHATREID_MAX_QUERY_IMAGES
    max_pixels: int = 4096 * 4096   # CHATREID_MAX_PIXELS: width*height of one uploaded image
    max_zip_mb: int = 200           # CHATREID_MAX_ZIP_MB: uncompressed size of a zip's images
    model_pixels: int = 1024 * 1024  # CHATREID_IMAGE_PIXELS: most pixels the model reads of one
    #                                 image; the app lowers it to the processor's max_pixels
    max_message_chars: int = 2000   # CHATREID_MAX_MESSAGE_CHARS
    max_message_tokens: int = 512   # CHATREID_MAX_MESSAGE_TOKENS
    request_seconds: int = 300      # CHATREID_REQUEST_SECONDS: one search (checked per batch)
    concurrency: int = 1            # CHATREID_CONCURRENCY: model calls at once (one model in memory)
    queue_size: int = 64            # CHATREID_QUEUE_SIZE: waiting requests before "queue full"
    top_k: int | None = None        # CHATREID_TOP_K: pre-filter head the VLM scores (None: all)
    idle_minutes: int = 30          # CHATREID_IDLE_MINUTES: an idle session's images are dropped
    memory_mb: int = 2048           # CHATREID_MEMORY_MB: images held by all sessions together
    max_sessions: int = 200         # CHATREID_MAX_SESSIONS: sessions held at once

    @classmethod
    def from_env(cls) -> "Limits":
        """Limits from the environment; ``SettingsError`` (one line, naming the variable) for any
        ``CHATREID_*`` value that is not usable."""
        values = {}
        for name, (attr, _default, least, _what) in SETTINGS.items():
            value = _env_int(name, least)
            if value is not None:
                values[attr] = value
        for name in OTHER_SETTINGS:
            if name in os.environ and not os.environ[name].strip():
                raise SettingsError(f"{name} is set but empty; unset it or give a value")
        return cls(**values)

    @staticmethod
    def unknown_settings() -> list[str]:
        """``CHATREID_*`` variables the app does not know (a typo like CHATREID_TOPK)."""
        return sorted(k for k in os.environ if k.startswith("CHATREID_")
                      and k not in SETTINGS and k not in OTHER_SETTINGS)

    @property
    def keep_pixels(self) -> int:
        """The most pixels a session keeps of one image: what the model reads, or the thumbnail
        and pre-filter size when that is larger. Images are reduced to this on arrival."""
        return max(self.model_pixels, THUMB_PIXELS)

    @property
    def session_image_bytes(self) -> int:
        """Upper bound of the image memory of one session (gallery and query photos, RGB)."""
        return (self.max_gallery + self.max_query_images) * self.keep_pixels * 3

    def apply_to_pillow(self) -> None:
        """Make Pillow itself refuse decompression bombs at our limit (it errors at 2x the value),
        as a second line behind the explicit size check in :func:`open_image`."""
        Image.MAX_IMAGE_PIXELS = self.max_pixels


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``), as ``MALLOC_ARENA_MAX`` would.

    Each server thread that decodes an upload or runs the model otherwise gets its own arena, which
    keeps the memory it freed: the process's RSS then grows by tens to hundreds of MB per busy
    thread, whatever the sessions hold (docs/benchmarks.md). Not applied when ``MALLOC_ARENA_MAX``
    is set (the person's choice wins) or outside glibc; returns whether it was applied.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-8, int(arenas)))  # M_ARENA_MAX is -8 in glibc's malloc.h
    except (OSError, AttributeError):
        return False


def release_freed_memory() -> None:
    """Hand memory that is already free back to the system (glibc ``malloc_trim``), after an
    upload decoded large images; a few milliseconds, nothing outside glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class UploadError(ValueError):
    """An upload the app refuses; the message is shown in the chat as is."""


# ----------------------------------------------------------------------------------------------
# Images and galleries
# ----------------------------------------------------------------------------------------------

def reduced_size(w: int, h: int, keep: int) -> tuple[int, int]:
    """(w, h) scaled down, aspect kept, so that w*h <= ``keep`` (unchanged when it already is)."""
    if w * h <= keep:
        return w, h
    scale = (keep / (w * h)) ** 0.5
    tw, th = max(1, int(w * scale)), max(1, int(h * scale))
    while tw * th > keep:  # rounding
        if tw >= th:
            tw -= 1
        else:
            th -= 1
    return tw, th


def image_bytes(image) -> int:
    """Memory of a decoded RGB image, as a session holds it."""
    w, h = image.size
    return w * h * len(image.getbands())


def open_image(source, name: str, limits: Limits) -> Image.Image:
    """Open an image file (path or bytes) as RGB, refusing non-images, corrupt files and bombs,
    and reduced on arrival to ``limits.keep_pixels`` (what the model and the thumbnails need).

    The pixel count is checked from the header before any pixel is decoded, so a small file that
    claims 100,000 x 100,000 pixels costs nothing. A JPEG is decoded at a reduced scale directly
    (``draft``); other formats are decoded once and reduced at once, so only the reduced image
    outlives this call.
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
                target = reduced_size(w, h, limits.keep_pixels)
                if target != (w, h):
                    im.draft("RGB", target)  # JPEG: decode at 1/2, 1/4 or 1/8 scale
                im.load()
                rgb = im if im.mode == "RGB" else im.convert("RGB")
                if rgb.size != target:
                    rgb = rgb.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0)
                elif rgb is im:
                    rgb = im.copy()  # detach from the file before it is closed
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


_MB = 1024 * 1024


def _read_capped(fh, cap: int, chunk: int = _MB) -> bytes | None:
    """Read a zip member, at most ``cap`` bytes; None when it holds more (whatever it declared)."""
    parts, n = [], 0
    while True:
        data = fh.read(min(chunk, cap + 1 - n))
        if not data:
            return b"".join(parts)
        parts.append(data)
        n += len(data)
        if n > cap:
            return None


class _ZipTooLarge(UploadError):
    """The whole archive is refused (not one member skipped)."""


def _zip_items(path: str, limits: Limits, problems: list[str]) -> list[GalleryItem]:
    """The images of a zip, read in memory (nothing is extracted, so no path can escape).

    The limits are checked twice: from the sizes the archive declares, before anything is
    decompressed (a zip bomb is refused at once), and again while reading, since declared sizes
    can lie.
    """
    items: list[GalleryItem] = []
    budget = limits.max_zip_mb * _MB
    max_file = limits.max_file_mb * _MB
    zname = _display_name(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise UploadError(f"{zname}: not a readable zip file ({err}).") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()
                   and not Path(m.filename).name.startswith(".") and "__MACOSX" not in m.filename]
        if len(members) > limits.max_gallery:
            raise UploadError(f"{zname} holds {len(members)} files; a gallery may "
                              f"have at most {limits.max_gallery} images.")
        too_big = [m for m in members if m.file_size > max_file]
        for m in too_big:
            problems.append(f"{zname}/{m.filename}: larger than {limits.max_file_mb} MB, skipped")
        members = [m for m in members if m.file_size <= max_file]
        declared = sum(m.file_size for m in members)
        if declared > budget:
            raise UploadError(f"{zname}: its files come to {declared / _MB:,.0f} MB once unpacked, "
                              f"more than the limit of {limits.max_zip_mb} MB; nothing was unpacked. "
                              "Upload fewer or smaller images.")
        read = 0
        for m in sorted(members, key=lambda m: m.filename):
            label = f"{zname}/{m.filename}"
            try:
                with zf.open(m) as fh:
                    data = _read_capped(fh, min(max_file, budget - read))
                if data is None:  # the archive declared less than it holds
                    if budget - read < max_file:
                        raise _ZipTooLarge(f"{zname}: more than {limits.max_zip_mb} MB once "
                                          "unpacked; upload fewer or smaller images.")
                    raise UploadError(f"{label}: larger than {limits.max_file_mb} MB")
                read += len(data)
                items.append(GalleryItem(Path(m.filename).name, open_image(data, label, limits)))
            except _ZipTooLarge:
                raise
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
    paths = list(paths or [])
    if len(paths) > limits.max_gallery:  # refused before a single file is opened
        raise UploadError(f"Too many files: {len(paths)}; a gallery may have at most "
                          f"{limits.max_gallery} images (set CHATREID_MAX_GALLERY to change it).")
    for p in paths:
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


def check_message(text: str, limits: Limits, count_tokens=None) -> None:
    """Refuse a message over the length limits, before anything else runs (``UploadError``).

    Characters are checked first (free); tokens only for a message under the character limit,
    so the tokenizer never sees more than ``max_message_chars`` characters.
    """
    n = len(text or "")
    if n > limits.max_message_chars:
        raise UploadError(f"Your message is {n:,} characters long; the limit is "
                          f"{limits.max_message_chars:,} (CHATREID_MAX_MESSAGE_CHARS). It was not "
                          "used: a sentence or two describes a person well.")
    if count_tokens is not None and n:
        tokens = count_tokens(text)
        if tokens > limits.max_message_tokens:
            raise UploadError(f"Your message is {tokens:,} tokens long; the limit is "
                              f"{limits.max_message_tokens:,} (CHATREID_MAX_MESSAGE_TOKENS). It was "
                              "not used; please shorten it.")


# ----------------------------------------------------------------------------------------------
# Sessions: idle expiry and a global memory budget
# ----------------------------------------------------------------------------------------------

class Busy(UploadError):
    """The server's session budget is used up by sessions that are all active."""


class SessionStore:
    """The sessions the app holds images for, with an idle time and a global budget.

    A session is anything with ``nbytes()`` (the memory of the images it holds) and
    ``drop(reason)`` (forget those images and remember to tell the person why). The app calls
    :meth:`begin` at the start of every request and :meth:`end` after it; :meth:`admit` before a
    session takes more images. Sessions idle longer than ``idle_seconds`` are dropped at the next
    request of anyone; when the budget (bytes or number of sessions) would be passed, the sessions
    idle longest are dropped first; if that is not enough (every other session is in the middle of
    a request), :class:`Busy` is raised and nothing is taken.
    """

    def __init__(self, budget_bytes: int, idle_seconds: float, max_sessions: int,
                 clock=time.monotonic):
        self.budget_bytes, self.idle_seconds, self.max_sessions = budget_bytes, idle_seconds, max_sessions
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[int, dict] = {}  # id(session) -> {"session", "last", "active"}

    @classmethod
    def from_limits(cls, limits: Limits, clock=time.monotonic) -> "SessionStore":
        return cls(limits.memory_mb * _MB, limits.idle_minutes * 60, limits.max_sessions, clock)

    def __len__(self) -> int:
        return len(self._entries)

    def held_bytes(self) -> int:
        with self._lock:
            return sum(e["session"].nbytes() for e in self._entries.values())

    def _drop(self, key: int, reason: str) -> None:
        entry = self._entries.pop(key)
        entry["session"].drop(reason)

    def _sweep(self, now: float) -> None:
        for key, e in list(self._entries.items()):
            if not e["active"] and now - e["last"] > self.idle_seconds:
                self._drop(key, f"it was idle for more than {self.idle_seconds / 60:g} minutes")

    def begin(self, session) -> None:
        """A request of ``session`` starts: expire idle sessions, then register this one (which
        may drop the longest-idle session, or raise Busy, at the session limit)."""
        with self._lock:
            now = self.clock()
            self._sweep(now)
            key = id(session)
            if key not in self._entries:
                self._make_room(key, 0, sessions=1)
                self._entries[key] = {"session": session, "last": now, "active": 0}
            e = self._entries[key]
            e["active"] += 1
            e["last"] = now

    def forget(self, session) -> None:
        """Stop tracking ``session`` (a one-off request's session, once answered)."""
        with self._lock:
            self._entries.pop(id(session), None)

    def end(self, session) -> None:
        with self._lock:
            e = self._entries.get(id(session))
            if e is not None:
                e["active"] = max(0, e["active"] - 1)
                e["last"] = self.clock()

    def admit(self, session, new_bytes: int, replaces_bytes: int = 0) -> None:
        """``session`` is about to hold ``new_bytes`` more image memory (``replaces_bytes`` of its
        current images go): make room by dropping the longest-idle other sessions, or raise Busy."""
        with self._lock:
            self._make_room(id(session), new_bytes - replaces_bytes, sessions=0)

    def _make_room(self, key: int, extra_bytes: int, sessions: int) -> None:
        if extra_bytes > self.budget_bytes:
            raise Busy(f"This needs {extra_bytes / _MB:,.0f} MB of image memory, more than the "
                       f"server's whole budget ({self.budget_bytes / _MB:,.0f} MB, "
                       "CHATREID_MEMORY_MB). Nothing was loaded; upload fewer images.")
        def over() -> bool:
            held = sum(e["session"].nbytes() for e in self._entries.values())
            return (held + extra_bytes > self.budget_bytes
                    or len(self._entries) + sessions > self.max_sessions)
        while over():
            idle = [(e["last"], k) for k, e in self._entries.items() if not e["active"] and k != key]
            if not idle:
                raise Busy("The server is busy: its memory for galleries is in use by other people's "
                           "searches right now. Nothing was loaded; please try again in a minute.")
            self._drop(min(idle)[1], "the server needed the memory for other people's galleries "
                                     "(it drops the sessions idle longest first)")


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

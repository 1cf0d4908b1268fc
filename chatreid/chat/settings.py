"""What the chat app runs with: the model it loads and its limits.

The model comes from ``--model``, ``$CHATREID_MODEL``, the embedded demo model folder or the tiny
test model, in that order (:func:`app_default_model`: the one decision a future embedded demo model
changes). Every limit is a ``CHATREID_*`` variable (:data:`SETTINGS`, :class:`Limits`), checked at
start with a one-line error. No Gradio here, so all of it is unit-testable without a server.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from chatreid import paths

if TYPE_CHECKING:
    from chatreid.chat.engine import ChatEngine

log = logging.getLogger("chatreid.app")

# Where the embedded demo model (a small trained ChatReID) lives, in the project's models/ folder
# (``chatreid.paths``: beside the package, or under $CHATREID_HOME); when this folder holds a
# checkpoint (config.json), it becomes the default. Its absence is normal (the tiny model runs).
DEMO_MODEL_DIR = paths.demo_model_dir()
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


def app_prefilter(model: str) -> str:
    """``$CHATREID_PREFILTER`` (a pre-filter name, a trained baseline's or text pre-filter's folder
    / Hub id, or ``IMAGE+TEXT``), else the model's default: the pip-shipped ImageNet
    EfficientNet-Lite0, plus the text pre-filter the model folder ships (the demo model's
    ``text-prefilter/``) for described people (``chatreid.retrieval.prefilter.default_prefilter``)."""
    from chatreid.retrieval.prefilter import default_prefilter

    return os.environ.get("CHATREID_PREFILTER", "").strip() or default_prefilter(model)


def load_engine(choice: ModelChoice):
    """The engine the app runs: ``ReIDEngine`` over the chosen model and its pre-filter (it loads
    safetensors only and never passes trust_remote_code)."""
    from chatreid.retrieval import ReIDEngine

    return ReIDEngine.from_pretrained(choice.name_or_path, prefilter=app_prefilter(choice.name_or_path))


def build_tiny_model(path: Path) -> Path:
    """Build the tiny model of the default family into ``path`` atomically (a half-written
    checkpoint never loads)."""
    from chatreid.model.families import default_family

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        default_family().build_tiny(tmp, seed=TINY_SEED)
        try:
            tmp.rename(path)
        except OSError:  # another process built it first
            if not (path / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path



def model_card_summary(name_or_path: str) -> str | None:
    """The first paragraph of a local model's card (``README.md``), front matter and headings
    skipped: how a model (the embedded demo above all) introduces itself in the app."""
    card = Path(name_or_path) / "README.md"
    if not card.is_file():
        return None
    text = re.sub(r"^---\n.*?\n---\n", "", card.read_text(encoding="utf-8"), flags=re.S)
    paras = [p for p in (q.strip() for q in text.split("\n\n")) if p and not p.startswith("#")]
    return paras[0] if paras else None


def model_name(name_or_path: str, origin: str) -> str:
    """What the page calls the model: a Hub id as it is, a local checkpoint by its folder's name
    (the server's own paths are not shown to visitors)."""
    return Path(name_or_path).name if origin != "hub" else name_or_path


def model_markdown(engine: ChatEngine, choice: ModelChoice) -> str:
    """The page's line naming the model, where it came from and what it is."""
    info = engine.model_info or {}
    where = {"--model": "chosen with --model", "CHATREID_MODEL": "chosen with CHATREID_MODEL",
             "demo": "the embedded demo model", "tiny": "the tiny test model"}.get(choice.source, "")
    name = model_name(info.get("name_or_path", choice.name_or_path), info.get("origin", "local"))
    line = (f"**Model:** `{name}` — origin: "
            f"{info.get('origin', 'unknown')}, architecture: {info.get('architecture', 'unknown')}"
            f" ({where}).")
    return line + (f"\n\n> {choice.notice}" if choice.notice else "")


def banner_markdown(choice: ModelChoice) -> str:
    """The model's own description: the first paragraph of its model card (README.md) when it is
    a local folder. This is where the embedded demo model introduces itself."""
    summary = model_card_summary(choice.name_or_path)
    if summary:
        return summary
    return ("*About the model: the embedded ChatReID demo model will describe itself here "
            "(first paragraph of its model card).*")


def check_start(cli_model: str | None) -> tuple["Limits", ModelChoice]:
    """What the app starts with, checked before any model is loaded: every ``CHATREID_*``
    setting, the model (a mistyped local path is named at once, with no Hub request) and its
    pre-filter. ``SettingsError`` (one line) for the first that cannot be used; unknown
    ``CHATREID_*`` variables and the tiny model's notice are logged."""
    from chatreid.hub import check_local
    from chatreid.retrieval.prefilter import check_prefilter

    limits = Limits.from_env()
    for name in Limits.unknown_settings():
        log.warning("%s is not a setting the app knows (see docs/app.md); it is ignored", name)
    choice = app_default_model(cli_model)
    if choice.notice:
        log.warning(re.sub(r"[*`]", "", choice.notice))
    try:
        check_local(choice.name_or_path, choice.source if choice.source in ("--model", "CHATREID_MODEL") else "model")
    except FileNotFoundError as err:
        raise SettingsError(str(err)) from None
    try:
        check_prefilter(app_prefilter(choice.name_or_path))
    except ValueError as err:
        raise SettingsError(f"CHATREID_PREFILTER: {err}") from None
    return limits, choice


# ----------------------------------------------------------------------------------------------
# Limits
# ----------------------------------------------------------------------------------------------

class SettingsError(ValueError):
    """A ``CHATREID_*`` setting that cannot be used; the message is one line naming it."""


# Older names still read, for the setting now named on the right (docs/app.md says so).
ALIASES = {"CHATREID_MAX_PIXELS": "CHATREID_UPLOAD_MAX_PIXELS"}
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


def _setting(env: str, default: int | None, least: int, what: str):
    """A ``Limits`` field: its default, and the ``CHATREID_*`` variable that sets it (``SETTINGS``)."""
    return field(default=default, metadata={"env": env, "least": least, "what": what})


@dataclass
class Limits:
    """Every limit of the app, the one table of them: each field's default, the environment
    variable that sets it, its least allowed value and what it limits (``SETTINGS`` reads them)."""

    max_file_mb: int = _setting("CHATREID_MAX_FILE_MB", 20, 1, "one upload, MB")  # launch max_file_size
    max_gallery: int = _setting("CHATREID_MAX_GALLERY", 200, 1, "images in one gallery")
    max_query_images: int = _setting("CHATREID_MAX_QUERY_IMAGES", 4, 1, "query photos in one message")
    # The upload cap (width*height of one uploaded image; Pillow's bomb limit too). Not the
    # processor's ``max_pixels`` (what the model reads): that caps ``model_pixels``.
    upload_max_pixels: int = _setting("CHATREID_UPLOAD_MAX_PIXELS", 4096 * 4096, 1, "pixels of one uploaded image")
    max_zip_mb: int = _setting("CHATREID_MAX_ZIP_MB", 200, 1, "unpacked size of one zip, MB")
    # Most pixels the model reads of one image; the app lowers it to the processor's max_pixels.
    model_pixels: int = _setting("CHATREID_IMAGE_PIXELS", 1024 * 1024, 1024,
                                 "pixels the model may read of one image (capped by its processor)")
    max_message_chars: int = _setting("CHATREID_MAX_MESSAGE_CHARS", 2000, 1, "characters of one message")
    max_message_tokens: int = _setting("CHATREID_MAX_MESSAGE_TOKENS", 512, 1, "tokens of one message")
    # one search, checked per batch
    request_seconds: int = _setting("CHATREID_REQUEST_SECONDS", 300, 1, "one search, seconds")
    # one model in memory
    concurrency: int = _setting("CHATREID_CONCURRENCY", 1, 1, "model calls at once")
    # More than max_sessions: every session held can have a request waiting.
    queue_size: int = _setting("CHATREID_QUEUE_SIZE", 256, 1, "waiting requests")
    # The pre-filter head the VLM scores; None (unset): all of it.
    top_k: int | None = _setting("CHATREID_TOP_K", None, 1, "images the model scores")
    idle_minutes: int = _setting("CHATREID_IDLE_MINUTES", 30, 1, "minutes before an idle session is dropped")
    memory_mb: int = _setting("CHATREID_MEMORY_MB", 2048, 16, "images held by all sessions together, MB")
    max_sessions: int = _setting("CHATREID_MAX_SESSIONS", 200, 1, "sessions held at once")

    @classmethod
    def from_env(cls) -> "Limits":
        """Limits from the environment; ``SettingsError`` (one line, naming the variable) for any
        ``CHATREID_*`` value that is not usable."""
        values = {}
        for name, (attr, _default, least, _what) in SETTINGS.items():
            old = next((o for o, new in ALIASES.items() if new == name), None)
            value = _env_int(name, least)
            old_value = _env_int(old, least) if old else None
            if value is not None and old_value is not None and value != old_value:
                raise SettingsError(f"{old} ({old_value}) and {name} ({value}) disagree; {old} is the "
                                    f"older name of {name}: set one")
            value = value if value is not None else old_value
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
                      and k not in SETTINGS and k not in ALIASES and k not in OTHER_SETTINGS)

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
        Image.MAX_IMAGE_PIXELS = self.upload_max_pixels


# Every setting the app reads: name -> (Limits field, default, least allowed value, what it is),
# read off the fields of ``Limits``. ``None`` as default: unset means "no limit" (only CHATREID_TOP_K).
SETTINGS = {f.metadata["env"]: (f.name, f.default, f.metadata["least"], f.metadata["what"]) for f in fields(Limits)}

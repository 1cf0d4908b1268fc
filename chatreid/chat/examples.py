"""The built-in example galleries (``examples/<name>/``, listed in ``examples/manifest.json``)
and the requests that suit each.

The folder is the project's ``examples/`` (``chatreid.paths``: beside the package, or under
$CHATREID_HOME); a pip-installed chatreid without it simply has no examples. It is also the only
folder the app serves besides Gradio's own upload cache (``launch(allowed_paths=...)``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from chatreid import paths
from chatreid.chat.conversation import GalleryItem
from chatreid.chat.settings import Limits
from chatreid.chat.uploads import UploadError, load_gallery

EXAMPLES_DIR = paths.examples_dir()


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


def load_example_gallery(name: str, limits: Limits, root: Path = EXAMPLES_DIR,
                         refusal=None) -> list[GalleryItem]:
    """The example gallery ``name``, read as an upload is (``refusal``: see ``uploads.readable``)."""
    examples = example_galleries(root)
    if name not in examples:
        raise UploadError(f"No example gallery called {name!r}; choose one of: "
                          f"{', '.join(examples) or '(none installed)'}.")
    items, _ = load_gallery(examples[name].gallery, limits, refusal)
    return items


def example_rows(examples) -> list:
    """The examples table's rows: each example request (its words and query photo) with its gallery."""
    rows = []
    for e in examples.values():
        for p in e.prompts:
            files = [str(EXAMPLES_DIR / e.name / "query" / p["query"])] if p.get("query") else []
            rows.append([{"text": p["text"], "files": files}, e.name])
    return rows

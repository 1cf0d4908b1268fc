"""Where the project's folders are, in one place.

The library itself needs none of them. The demo build, the chat app and the training wrapper read
files that live in the repository next to the package (``models/``, ``docs/``, ``examples/``,
``train/configs/``). Run from a clone, they are found beside the imported ``chatreid``. A
pip-installed ``chatreid`` has no such folders: set ``CHATREID_HOME`` to a clone of the repository,
or pass the paths explicitly (every command that reads them takes one).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CHATREID_HOME"


def home() -> Path:
    """The project folder: ``$CHATREID_HOME`` when set, else the folder holding the package."""
    value = os.environ.get(ENV)
    return Path(value).expanduser().resolve() if value else Path(__file__).resolve().parent.parent


def project_path(*parts: str) -> Path:
    """A path inside the project folder (it may not exist; see ``require``)."""
    return home().joinpath(*parts)


def require(path: Path, what: str) -> Path:
    """``path`` if it exists; else a one-line error saying how to point at it."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{what} not found at {path}: a pip-installed chatreid has no project folders; "
                                f"set {ENV} to a clone of the repository, or pass the path")
    return Path(path)


# The embedded demo model (a small trained ChatReID), relative to the project folder: the demo
# build writes it, the chat app loads it when present, the app Space ships it at the same place.
DEMO_MODEL = Path("models", "chatreid-demo")


def models_dir() -> Path:
    return project_path("models")


def demo_model_dir() -> Path:
    return home() / DEMO_MODEL


def docs_dir() -> Path:
    return project_path("docs")


def examples_dir() -> Path:
    return project_path("examples")


def train_configs_dir() -> Path:
    return project_path("train", "configs")

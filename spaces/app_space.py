"""Stage the ChatReID chat Space: ``python spaces/publish.py app --repo-id USER/chatreid``.

What a Gradio Space needs to run ``app.py`` as it runs here: the app, the ``chatreid`` package it
imports, the built-in example galleries, the Space's README (its YAML front matter configures the
Space) and requirements. When the embedded demo model exists (``models/chatreid-demo``), it is
staged too and becomes the Space's default model; otherwise set the Space variable
``CHATREID_MODEL`` to a checkpoint on the Hub, or the Space runs the tiny test model (random
weights, with a notice saying so).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from chatreid.paths import DEMO_MODEL

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")


def stage_app(dest: str | Path) -> Path:
    """Copy the app Space's files into ``dest`` (created if needed); the sources are not touched."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "app.py", dest / "app.py")
    shutil.copy2(HERE / "README.md", dest / "README.md")
    shutil.copy2(HERE / "requirements.txt", dest / "requirements.txt")
    shutil.copytree(ROOT / "chatreid", dest / "chatreid", ignore=_IGNORE, dirs_exist_ok=True)
    shutil.copytree(ROOT / "examples", dest / "examples", ignore=_IGNORE, dirs_exist_ok=True)
    demo = ROOT / DEMO_MODEL
    if (demo / "config.json").is_file():
        shutil.copytree(demo, dest / DEMO_MODEL, ignore=_IGNORE, dirs_exist_ok=True)
    return dest

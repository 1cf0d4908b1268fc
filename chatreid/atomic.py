"""Installing a finished folder (or file) in place of an old one, so that no reader ever sees half of one.

Every writer of a folder that later code trusts (SynthPeds worlds, image stores, instruction
datasets, checkpoints, the demo model) builds it beside its destination, then calls
``install_dir``: a crash before the call leaves the old folder untouched, a crash during it leaves
the old folder or the new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path


def install_dir(built: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Move the finished folder ``built`` to ``out`` (same filesystem). An existing ``out`` is
    moved aside first and deleted only once the new one is in place."""
    built, out = Path(built), Path(out)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(built, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


@contextlib.contextmanager
def building(out: str | os.PathLike):
    """``with building(out) as tmp:`` write the folder into ``tmp`` (a fresh sibling of ``out``);
    on leaving the block it is installed at ``out`` (``install_dir``); on an error it is removed and
    ``out`` stays as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        install_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a sibling temporary file and a rename: a reader sees the
    old file or the whole new one, never half of it."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

"""What every reader shares: checked paths, bad-input handling, the ``Records`` it returns.

Readers check existence and names only; decoding every image is the store build's job (it
decodes anyway), so reading a 100k-image benchmark stays a matter of seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

from chatreid.data import Records
from chatreid.data.record import Record

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def require_dir(path, what: str = "folder") -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: missing {what}")
    return path


def require_file(path, what: str = "file") -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing {what}")
    return path


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted. Other files (e.g. Windows' Thumbs.db, which
    some Market-1501 copies carry) are not images and are ignored, as the public loaders' ``*.jpg``
    globs ignore them."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


class Collector:
    """Accumulates records; a bad entry raises ``ValueError`` naming the path, or with
    ``skip_bad=True`` is recorded in ``skipped`` as (path, reason)."""

    def __init__(self, root, dataset: str, skip_bad: bool = False):
        self.root = str(Path(root).absolute())
        self.dataset = dataset
        self.skip_bad = skip_bad
        self.records: list[Record] = []
        self.skipped: list[tuple[str, str]] = []

    def bad(self, path, reason: str) -> None:
        message = f"{path}: {reason}"
        if not self.skip_bad:
            raise ValueError(message)
        self.skipped.append((str(path), message))

    def add(self, path, pid: int, camid: int, split: str, *, check_exists: bool = False,
            **fields) -> Record | None:
        path = Path(path).absolute()
        if check_exists and not path.is_file():
            self.bad(path, "listed image file does not exist")
            return None
        record = Record(path=str(path), pid=int(pid), camid=int(camid), split=split,
                        dataset=self.dataset, **fields)
        self.records.append(record)
        return record

    def result(self) -> Records:
        return Records(self.records, root=self.root, skipped=self.skipped)


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a text list file (trailing whitespace and CRLF stripped)."""
    with open(require_file(path, "list file"), encoding="utf-8") as f:
        return [line.rstrip() for line in f if line.strip()]


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"option {name}={value!r}: expected one of {tuple(choices)}")


def rel(path, root) -> str:
    return os.path.relpath(path, root)

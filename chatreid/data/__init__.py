"""Person data: benchmark readers, SynthPeds, the image store.

``read(name, root, **options)`` returns the records of every split of one benchmark, read the way
its standard public loader reads it (one module per benchmark in ``chatreid/data/readers/``; the
docstring of each reader function states its conventions and options).
"""

from __future__ import annotations

import importlib
import logging

from chatreid.data.record import Record

log = logging.getLogger(__name__)

# name -> "module:function" under chatreid.data.readers (imported on first use).
READERS: dict[str, str] = {
    "market1501": "market1501:read_market1501",
    "msmt17": "msmt17:read_msmt17",
    "cuhk03": "cuhk03:read_cuhk03",
    "ltcc": "ltcc:read_ltcc",
    "prcc": "prcc:read_prcc",
    "sysu_mm01": "sysu_mm01:read_sysu_mm01",
    "regdb": "regdb:read_regdb",
    "cuhk_pedes": "pedes:read_cuhk_pedes",
    "icfg_pedes": "pedes:read_icfg_pedes",
    "rstpreid": "pedes:read_rstpreid",
    "synthpeds": "synthpeds:read_synthpeds",
}


class Records(list):
    """A list of ``Record`` that also knows the dataset ``root`` it was read from, what the
    reader ``skipped`` (``(path, reason)`` pairs; only ever non-empty with ``skip_bad=True``) and
    the identity split it read (``trial``: RegDB's trial, CUHK03 classic's split; None where the
    benchmark has one fixed split; see ``chatreid.data.trials``)."""

    def __init__(self, records=(), root: str = "", skipped=None, trial: int | None = None):
        super().__init__(records)
        self.root = root
        self.skipped: list[tuple[str, str]] = list(skipped or [])
        self.trial = trial


def reader(name: str):
    """The reader function registered under ``name``."""
    try:
        target = READERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(READERS)}") from None
    module, func = target.split(":")
    return getattr(importlib.import_module(f"chatreid.data.readers.{module}"), func)


def read(name: str, root, **options) -> Records:
    """Read benchmark ``name`` at ``root``: records of every split (see ``READERS``).

    Common options: ``skip_bad=True`` leaves out unrecognised files instead of raising, and
    reports them in ``records.skipped`` and the log. Other options are per reader.
    """
    records = reader(name)(root, **options)
    if records.skipped:
        log.warning("%s at %s: skipped %d file(s), e.g. %s", name, root, len(records.skipped),
                    records.skipped[0][1])
    return records


__all__ = ["READERS", "Record", "Records", "read", "reader"]

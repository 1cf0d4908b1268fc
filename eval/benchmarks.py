"""What each benchmark evaluates: its protocols, its trials, its queries and gallery, its table.

``load_trials(name, root, protocol, trials)`` reads a benchmark with ``chatreid.data.read`` and
returns the evaluation trials; every check that can fail (unknown dataset, a protocol that does
not fit it, empty query set or gallery) runs here, before any model is loaded.

Trials: SYSU-MM01 is scored over ten single-shot galleries (``sample_sysu_gallery``, trials 0-9,
the same infrared queries each time); RegDB over its ten splits (``read(..., trial=1..10)``);
everything else is one trial. Metrics are averaged over trials, as the reference code does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# dataset -> protocols that fit it (the first is the paper's)
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "market1501": ("market",),
    "msmt17": ("market",),
    "cuhk03": ("market", "cuhk03_classic"),
    "ltcc": ("cc", "general", "sc"),
    "prcc": ("cc", "general", "sc"),
    "sysu_mm01": ("sysu",),
    "regdb": ("regdb",),
    "cuhk_pedes": ("t2i",),
    "icfg_pedes": ("t2i",),
    "rstpreid": ("t2i",),
}
# SynthPeds: the protocols fit the layout it was written in
SYNTH_PROTOCOLS = {"market": ("market",), "ltcc": ("cc", "general", "sc"), "sysu": ("sysu",), "pedes": ("t2i",)}

# protocol -> the engine's task
TASK = {"market": "standard", "cuhk03_classic": "standard", "general": "standard", "cc": "cloth_changing",
        "sc": "cloth_changing", "sysu": "visible_infrared", "regdb": "visible_infrared", "t2i": "text_to_image"}

# The paper's tables: (table, title, columns in order). Table 4 is the stage ablation (mAP).
TABLES = [
    ("Table 1", "Standard person Re-ID", ("market1501", "msmt17", "cuhk03")),
    ("Table 2", "Cloth-changing Re-ID", ("ltcc", "prcc")),
    ("Table 3", "Visible-infrared Re-ID", ("sysu_mm01", "regdb")),
    ("Table 5", "Text-to-image Re-ID", ("cuhk_pedes", "icfg_pedes", "rstpreid")),
]
TABLE4_COLUMNS = ("market1501", "msmt17", "cuhk03", "prcc", "ltcc", "sysu_mm01", "regdb",
                  "cuhk_pedes", "icfg_pedes", "rstpreid")
DISPLAY = {"market1501": "Market1501", "msmt17": "MSMT17", "cuhk03": "CUHK03", "ltcc": "LTCC", "prcc": "PRCC",
           "sysu_mm01": "SYSU-MM01", "regdb": "RegDB", "cuhk_pedes": "CUHK-PEDES", "icfg_pedes": "ICFG-PEDES",
           "rstpreid": "RSTPReid"}


@dataclass
class QueryItem:
    """One query: an image record or a caption of a record (text-to-image)."""

    qid: str  # stable id for the cache: path relative to the root, plus "#k" for caption k
    pid: int
    camid: int | None
    clothes: str | None
    path: str | None = None  # image queries
    text: str | None = None  # text queries


@dataclass
class Trial:
    name: str  # "0" for single-trial benchmarks; SYSU "0".."9"; RegDB "1".."10"
    queries: list[QueryItem]
    gallery: list  # Records
    options: dict = field(default_factory=dict)  # protocol options for the metric


def parse_dataset(spec: str) -> tuple[str, str]:
    """``name:path`` -> (name, path); the path must exist."""
    name, sep, path = spec.partition(":")
    if not sep or not name or not path:
        raise ValueError(f"--dataset {spec!r}: expected NAME:PATH, e.g. market1501:/data/Market-1501-v15.09.15")
    if name not in PROTOCOLS and name != "synthpeds":
        raise ValueError(f"--dataset: unknown benchmark {name!r}; known: {', '.join([*PROTOCOLS, 'synthpeds'])}")
    if not Path(path).is_dir():
        raise FileNotFoundError(f"--dataset {name}: no such folder {path}")
    return name, path


def fitting_protocols(name: str, root: str) -> tuple[str, ...]:
    if name == "synthpeds":
        from chatreid.data.readers.synthpeds import detect_layout

        return SYNTH_PROTOCOLS[detect_layout(root)]
    return PROTOCOLS[name]


def check_protocol(name: str, root: str, protocol: str | None) -> str:
    """The protocol to use (default: the paper's for this benchmark), or ValueError if it does not fit."""
    fits = fitting_protocols(name, root)
    if protocol is None:
        return fits[0]
    if protocol not in fits:
        raise ValueError(f"--protocol {protocol!r} does not fit {name} at {root}; it fits: {', '.join(fits)}")
    return protocol


def _image_queries(records, root: str) -> list[QueryItem]:
    return [QueryItem(qid=str(Path(r.path).relative_to(root)) if Path(r.path).is_relative_to(root) else r.path,
                      pid=r.pid, camid=r.camid, clothes=r.clothes_id, path=r.path) for r in records]


def _caption_queries(gallery, root: str) -> list[QueryItem]:
    out = []
    for r in gallery:
        rel = str(Path(r.path).relative_to(root)) if Path(r.path).is_relative_to(root) else r.path
        out += [QueryItem(qid=f"{rel}#{k}", pid=r.pid, camid=None, clothes=None, text=c) for k, c in enumerate(r.captions)]
    return out


def load_trials(name: str, root: str, protocol: str, trials: int | None = None) -> list[Trial]:
    """Read the benchmark and build its evaluation trials (module docstring).

    ``trials``: how many of SYSU-MM01's / RegDB's ten to run (default all ten); an explicit
    choice, recorded in the results, never a silent cut.
    """
    from chatreid.data import read

    if trials is not None and not 1 <= trials <= 10:
        raise ValueError(f"--trials must be in 1..10, got {trials}")
    root = str(Path(root).resolve())
    if name == "regdb":
        out = []
        for t in range(1, (trials or 10) + 1):
            recs = read("regdb", root, trial=t)
            out.append(_trial(str(t), recs, root, protocol))
        return out
    recs = read(name, root)
    if protocol == "sysu":
        from chatreid.data.readers.sysu_mm01 import sample_sysu_gallery

        base = _trial("all", recs, root, protocol)
        return [Trial(str(t), base.queries, sample_sysu_gallery(recs, t, "all"), {"search_mode": "all"})
                for t in range(trials or 10)]
    if trials not in (None, 1):
        raise ValueError(f"--trials applies to SYSU-MM01 and RegDB; {name} has one fixed split")
    return [_trial("0", recs, root, protocol)]


def _trial(name: str, recs, root: str, protocol: str) -> Trial:
    gallery = [r for r in recs if r.split == "gallery"]
    if not gallery:
        raise ValueError(f"{root}: the benchmark has no gallery images")
    if protocol == "t2i":
        queries = _caption_queries(gallery, root)
        if not queries:
            raise ValueError(f"{root}: text-to-image protocol, but no gallery image carries a caption")
    else:
        queries = _image_queries([r for r in recs if r.split == "query"], root)
        if not queries:
            raise ValueError(f"{root}: the benchmark has no query images")
    if protocol in ("cc", "sc") and any(r.clothes_id is None for r in gallery):
        raise ValueError(f"protocol {protocol!r} needs clothes ids, and {root} has gallery images without one")
    return Trial(name, queries, gallery)

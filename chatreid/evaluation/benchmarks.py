"""What each benchmark evaluates: its protocols, its trials, its queries and gallery, its table.

``load_trials(name, root, protocol, trials)`` reads a benchmark with ``chatreid.data.read`` and
returns the evaluation trials; every check that can fail (unknown dataset, a protocol that does
not fit it, empty query set or gallery) runs here, before any model is loaded.

Trials: SYSU-MM01 is scored over ten single-shot galleries (``sample_sysu_gallery``, trials 0-9,
the same infrared queries each time); RegDB over its ten splits (``read(..., trial=1..10)``);
CUHK03's classic layout over its 20 random splits; PRCC with ``gallery_shot="single"`` over ten
single-shot galleries (``sample_prcc_gallery``); everything else is one trial. Metrics are
averaged over trials, as the reference code does.

Benchmark options (``OPTIONS``; ``eval/run.py`` flags of the same names): SYSU-MM01's
``search_mode`` (all / indoor), RegDB's ``direction``, CUHK03's ``boxes`` (labeled / detected)
and ``cuhk03_layout`` (np / classic), PRCC's ``gallery_shot`` (multi / single). Each is checked
against the benchmark before anything is read, and every applicable one is recorded with its
value (given or default) by ``resolve_options``. A non-default choice also names the trials
(e.g. ``indoor-0``), so its cached rankings never mix with another gallery's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# dataset -> protocols that fit it (the first, the default, is the one the paper's tables compare
# against). LTCC: general, as CAL's 40.8 / 74.2 in Table 2 are its general figures (its
# cloth-changing ones are 18.0 / 40.1); PRCC: cc, as Table 2's PRCC rows are cloth-changing figures.
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "market1501": ("market",),
    "msmt17": ("market",),
    "cuhk03": ("market", "cuhk03_classic"),
    "ltcc": ("general", "cc", "sc"),
    "prcc": ("cc", "general", "sc"),
    "sysu_mm01": ("sysu",),
    "regdb": ("regdb",),
    "cuhk_pedes": ("t2i",),
    "icfg_pedes": ("t2i",),
    "rstpreid": ("t2i",),
}
# SynthPeds: the protocols fit the layout it was written in
SYNTH_PROTOCOLS = {"market": ("market",), "ltcc": PROTOCOLS["ltcc"], "sysu": ("sysu",), "pedes": ("t2i",)}

# The paper's tables: (table, title, columns in order). Table 4 is the stage ablation (mAP).
TABLES = [
    ("Table 1", "Standard person Re-ID", ("market1501", "msmt17", "cuhk03")),
    ("Table 2", "Cloth-changing Re-ID", ("ltcc", "prcc")),
    ("Table 3", "Visible-infrared Re-ID", ("sysu_mm01", "regdb")),
    ("Table 5", "Text-to-image Re-ID", ("cuhk_pedes", "icfg_pedes", "rstpreid")),
]
TABLE4_COLUMNS = ("market1501", "msmt17", "cuhk03", "ltcc", "prcc", "sysu_mm01", "regdb",
                  "cuhk_pedes", "icfg_pedes", "rstpreid")
DISPLAY = {"market1501": "Market1501", "msmt17": "MSMT17", "cuhk03": "CUHK03", "ltcc": "LTCC", "prcc": "PRCC",
           "sysu_mm01": "SYSU-MM01", "regdb": "RegDB", "cuhk_pedes": "CUHK-PEDES", "icfg_pedes": "ICFG-PEDES",
           "rstpreid": "RSTPReid"}


# option -> (benchmarks it applies to; "synthpeds:<layout>" for a SynthPeds world, choices,
# default: None = decided by what the folder holds)
OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {
    "search_mode": (("sysu_mm01", "synthpeds:sysu"), ("all", "indoor"), "all"),
    "direction": (("regdb",), ("visible_to_thermal", "thermal_to_visible"), "visible_to_thermal"),
    "boxes": (("cuhk03",), ("labeled", "detected"), "labeled"),
    "cuhk03_layout": (("cuhk03",), ("np", "classic"), None),
    "gallery_shot": (("prcc",), ("multi", "single"), "multi"),
}


def _kind(name: str, root: str) -> str:
    if name == "synthpeds":
        from chatreid.data.readers.synthpeds import detect_layout

        return f"synthpeds:{detect_layout(root)}"
    return name


def _say(kind: str) -> str:
    return f"a SynthPeds {kind[10:]} world" if kind.startswith("synthpeds:") else kind


def resolve_options(name: str, root: str, given: dict | None = None) -> dict:
    """Every option that applies to this benchmark, with its value: ``given`` (None values are
    "not given") over the defaults. An option that does not apply, or an unknown value, is a
    ValueError naming the flag."""
    kind = _kind(name, root)
    given = {k: v for k, v in (given or {}).items() if v is not None}
    out = {}
    for key, value in given.items():
        if key not in OPTIONS:
            raise ValueError(f"unknown benchmark option {key!r}; known: {', '.join(OPTIONS)}")
        fits, choices, _ = OPTIONS[key]
        flag = "--" + key.replace("_", "-")
        if kind not in fits:
            raise ValueError(f"{flag} applies to {' or '.join(map(_say, fits))}, not {_say(kind)}")
        if value not in choices:
            raise ValueError(f"{flag} {value!r}: expected one of {', '.join(choices)}")
    for key, (fits, _, default) in OPTIONS.items():
        if kind in fits:
            out[key] = given.get(key, default)
    if kind == "cuhk03" and out["cuhk03_layout"] is None:
        from chatreid.data.readers.cuhk03 import detect_layout

        out["cuhk03_layout"] = detect_layout(root)
    return out


def num_trials(name: str, options: dict) -> int:
    """How many trials the benchmark's protocol averages over, with these options."""
    if name == "regdb" or options.get("search_mode") or options.get("gallery_shot") == "single":
        return 10
    if options.get("cuhk03_layout") == "classic":
        from chatreid.data.readers.cuhk03 import CLASSIC_SPLITS

        return CLASSIC_SPLITS
    return 1


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
    # the identity split the trial tests on (RegDB trial 1..10, CUHK03 classic split 0..19; None:
    # one fixed split): only a model trained on this split may score it (chatreid.data.trials)
    split: int | None = None


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


def fitting_protocols(name: str, root: str, options: dict | None = None) -> tuple[str, ...]:
    if name == "synthpeds":
        from chatreid.data.readers.synthpeds import detect_layout

        return SYNTH_PROTOCOLS[detect_layout(root)]
    if (options or {}).get("cuhk03_layout") == "classic":
        return ("cuhk03_classic", "market")  # the classic splits are scored single-gallery-shot
    return PROTOCOLS[name]


def check_protocol(name: str, root: str, protocol: str | None, options: dict | None = None) -> str:
    """The protocol to use (default: the paper's for this benchmark), or ValueError if it does not fit."""
    fits = fitting_protocols(name, root, options)
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


def load_trials(name: str, root: str, protocol: str, trials: int | None = None,
                options: dict | None = None) -> list[Trial]:
    """Read the benchmark and build its evaluation trials (module docstring).

    ``trials``: how many of the protocol's trials to run (default all: ``num_trials``); an
    explicit choice, recorded in the results, never a silent cut. ``options``: benchmark
    options, checked and completed by ``resolve_options``. RegDB and CUHK03-classic trials carry
    their identity ``split``: each must be scored by a model trained on that split alone.
    """
    from chatreid.data import read

    options = resolve_options(name, root, options)
    full = num_trials(name, options)
    if trials is not None:
        if full == 1 and trials != 1:
            raise ValueError(f"--trials: {name} has one fixed split here (trials apply to SYSU-MM01, "
                             "RegDB, CUHK03's classic layout and PRCC's single-shot galleries)")
        if not 1 <= trials <= full:
            raise ValueError(f"--trials must be in 1..{full} for {name}, got {trials}")
    count = trials or full
    root = str(Path(root).resolve())
    if name == "regdb":
        prefix = "" if options["direction"] == "visible_to_thermal" else "t2v-"
        return [_trial(f"{prefix}{t}", read("regdb", root, trial=t, direction=options["direction"]), root, protocol,
                       split=t) for t in range(1, count + 1)]
    if name == "cuhk03":
        layout, boxes = options["cuhk03_layout"], options["boxes"]
        if layout == "classic":
            return [_trial(f"classic-{boxes}-{t}", read("cuhk03", root, version=boxes, layout="classic", split=t),
                           root, protocol, queries_from_gallery=True, split=t) for t in range(count)]
        recs = read("cuhk03", root, version=boxes, layout="np")
        return [_trial("0" if boxes == "labeled" else f"{boxes}-0", recs, root, protocol)]
    recs = read(name, root)
    if protocol == "sysu":
        from chatreid.data.readers.sysu_mm01 import sample_sysu_gallery

        mode = options["search_mode"]
        prefix = "" if mode == "all" else f"{mode}-"
        base = _trial("all", recs, root, protocol)
        return [Trial(f"{prefix}{t}", base.queries, sample_sysu_gallery(recs, t, mode), {"search_mode": mode})
                for t in range(count)]
    if options.get("gallery_shot") == "single":
        from chatreid.data.readers.prcc import sample_prcc_gallery

        base = _trial("single", recs, root, protocol)
        return [Trial(f"single-{t}", base.queries, sample_prcc_gallery(recs, t)) for t in range(count)]
    return [_trial("0", recs, root, protocol)]


def _trial(name: str, recs, root: str, protocol: str, queries_from_gallery: bool = False,
           split: int | None = None) -> Trial:
    gallery = [r for r in recs if r.split == "gallery"]
    if not gallery:
        raise ValueError(f"{root}: the benchmark has no gallery images")
    if protocol == "t2i":
        queries = _caption_queries(gallery, root)
        if not queries:
            raise ValueError(f"{root}: text-to-image protocol, but no gallery image carries a caption")
    else:
        # CUHK03's classic splits query every test image against the others (query = gallery)
        queries = _image_queries(gallery if queries_from_gallery else [r for r in recs if r.split == "query"], root)
        if not queries:
            raise ValueError(f"{root}: the benchmark has no query images")
    if protocol in ("cc", "sc") and any(r.clothes_id is None for r in gallery):
        raise ValueError(f"protocol {protocol!r} needs clothes ids, and {root} has gallery images without one")
    return Trial(name, queries, gallery, split=split)

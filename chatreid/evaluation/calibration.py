"""``eval/run.py --task calibrate``: choose the pre-filter's threshold tau on a validation split.

Every query of the validation benchmark is compared with its gallery by the pre-filter alone (no
VLM); ``chatreid.retrieval.prefilter.calibrate_tau`` finds the largest tau keeping
``--target-recall`` of the true matches (the protocol's junk, a match in the query's own camera,
left out where cameras are known). The record goes to ``--out/tau.json`` and, for a trained
pre-filter folder, into that folder too, where ``--tau auto`` reads it.

The validation split must not be the test split, or tau is tuned on the people it is then scored
on: use a benchmark's validation identities, or a SynthPeds world of another seed. The table
flags a run whose calibration came from the folder it evaluates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from chatreid.evaluation.benchmarks import check_protocol, load_trials, parse_dataset, resolve_options


def calibration_record(prefilter, name: str, prefilter_name: str, dataset: str, trials, target_recall: float) -> dict:
    """tau for ``target_recall`` over the queries of ``trials``, with what it does there."""
    from chatreid.evaluation.harness import load_images
    from chatreid.retrieval.prefilter import calibrate_tau

    sims, rel, valid = [], [], []
    for trial in trials:
        if trial.queries[0].path is None:
            raise ValueError(f"{dataset}: text queries; tau filters image queries (calibrate on an image benchmark)")
        gallery = prefilter.features(load_images([g.path for g in trial.gallery]))
        g_pids = np.array([g.pid for g in trial.gallery])
        g_cams = np.array([-1 if g.camid is None else g.camid for g in trial.gallery])
        for q in trial.queries:
            sims.append(prefilter.similarity(load_images([q.path]), gallery))
            rel.append(g_pids == q.pid)
            valid.append(~((g_pids == q.pid) & (g_cams == q.camid)) if q.camid is not None else np.ones(len(g_pids), bool))
    record = calibrate_tau(sims, rel, target_recall, valid)
    return {**record, "prefilter": prefilter_name, "validation": dataset,
            "validation_root": str(Path(dataset.partition(":")[2]).resolve()), "trials": [t.name for t in trials]}


def calibrate(args) -> int:
    """The ``--task calibrate`` command; exit code 2 with one line on bad input."""
    from chatreid.retrieval.prefilter import (CALIBRATION, DEFAULT_PREFILTER, build_prefilter, calibration_folder,
                                             check_prefilter)

    try:
        name, root = parse_dataset(args.dataset)
        options = resolve_options(name, root, {})
        protocol = check_protocol(name, root, args.protocol, options)
        trials = load_trials(name, root, protocol, args.trials, options)
        # tau cuts image similarities: with no --prefilter, those of the image pre-filter every
        # model runs with by default
        prefilter = args.prefilter or DEFAULT_PREFILTER
        check_prefilter(prefilter)
        if prefilter in ("none", "vlm"):
            raise ValueError(f"--prefilter {prefilter}: nothing to calibrate without a model-free pre-filter")
        record = calibration_record(build_prefilter(prefilter), name, prefilter, args.dataset, trials,
                                    args.target_recall)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"eval/run.py: error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(record, indent=1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / CALIBRATION).write_text(text)
    folder = calibration_folder(prefilter)
    if folder is not None:
        (folder / CALIBRATION).write_text(text)
    print(f"tau {record['tau']:.4f} keeps {100 * record['recall']:.1f}% of {record['matches']} true matches "
          f"(target {100 * args.target_recall:.0f}%) and {100 * record['gallery_kept']:.1f}% of the gallery, on "
          f"{args.dataset} -> {Path(args.out) / CALIBRATION}" + (f" and {folder / CALIBRATION}" if folder else ""))
    return 0

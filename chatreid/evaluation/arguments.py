"""The command line of ``eval/run.py``: its options and the checks argparse can make on them.

``parse_args(argv)`` returns the namespace that ``chatreid.evaluation.run.run`` takes; the demo
build passes typed option values instead of an argument list (``parse_args(top_k=5, ...)``).
"""

from __future__ import annotations

import argparse

from chatreid import paths

METRIC_PATH = paths.project_path("chatreid_metric")
DESCRIPTION = "Evaluate ChatReID checkpoints on a Re-ID benchmark, as in the paper's Tables 1-5 and sec. 4.2."
TASKS = ("reid", "attribute", "multimodal", "calibrate")


def parse_args(argv=None, **fields):
    """The options from ``argv`` (default: ``sys.argv``; with ``fields``: none), over ``fields``:
    typed values by option name (``top_k=5``), for callers in the same process, checked as a
    command line's are. An unknown name is an error."""
    from chatreid.retrieval.best_choice import DEBIAS, RANKINGS
    from chatreid.retrieval.engine import STRATEGIES
    from chatreid.retrieval.prefilter import PREFILTERS

    from chatreid.usage import ArgumentParser

    ap = ArgumentParser(prog="eval/run.py", description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=TASKS, default="reid",
                    help="reid: the paper's Tables 1-5 (default); attribute / multimodal: the sec. 4.2 evaluations "
                         "(attribute-based retrieval over N sampled images; image query with added text against "
                         "image alone); calibrate: choose --tau for a recall of true matches (pre-filter only)")
    ap.add_argument("--model", action="append",
                    help="checkpoint: Hub id or local folder; repeat for the stage ablation (Table 4). "
                         "'{trial}' in it is replaced by each trial's identity split (RegDB 1..10, CUHK03 classic "
                         "0..19), e.g. 'ckpt/regdb-trial{trial}': one checkpoint per trial")
    ap.add_argument("--label", action="append", help="row label per --model (default: folder/repo name)")
    ap.add_argument("--dataset", required=True, help="NAME:PATH, e.g. market1501:/data/Market-1501 or synthpeds:DIR")
    ap.add_argument("--protocol", help="metric protocol (default: the benchmark's; must fit the dataset)")
    ap.add_argument("--strategy", choices=STRATEGIES, default="pairwise")
    ap.add_argument("--prefilter", default=None, metavar="NAME_OR_PATH",
                    help=f"one of {', '.join(PREFILTERS)}, or a Re-ID baseline / text pre-filter folder or Hub id "
                         "(train/baseline.py, train/text_prefilter.py), or IMAGE+TEXT of those (default: per "
                         "model, efficientnet_lite0 plus the text pre-filter a model folder ships in "
                         "text-prefilter/, as the demo model does); '{trial}' as in --model")
    ap.add_argument("--top-k", type=int, default=None, help="VLM scores the K most similar gallery images")
    ap.add_argument("--tau", default=None, metavar="TAU|auto|FILE",
                    help="VLM scores gallery images with similarity >= tau: a number, 'auto' (the calibration "
                         "stored in the pre-filter's folder by --task calibrate) or a calibration file (tau.json)")
    ap.add_argument("--target-recall", type=float, default=0.95,
                    help="--task calibrate: share of true matches tau keeps on the validation --dataset")
    ap.add_argument("--sample", type=int, default=100,
                    help="--task attribute: images sampled from the attribute-annotated set (N)")
    ap.add_argument("--query-attributes", type=int, default=1,
                    help="--task attribute: attributes per query (each query: one combination present in the sample)")
    ap.add_argument("--queries", type=int, default=None,
                    help="--task attribute: at most this many attribute queries (default all present in the sample)")
    ap.add_argument("--seed", type=int, default=0, help="--task attribute: sampling seed")
    ap.add_argument("--window", type=int, default=4, help="best-choice page size (2..9)")
    ap.add_argument("--best-choice-ranking", choices=RANKINGS, default="confidence",
                    help="best-choice final list: confidence (the paper's: every image by its pick's P(Image k), "
                         "across pages) or merge (ours: pages merged by more picks)")
    ap.add_argument("--debias", choices=DEBIAS, default="rotate",
                    help="best-choice position bias: rotate (read each page in all its cyclic rotations, "
                         "window times the passes) or none")
    ap.add_argument("--trials", type=int, default=None,
                    help="run the first N trials (SYSU-MM01, RegDB, PRCC single-shot: 10; CUHK03 classic: 20)")
    # benchmark options (eval/benchmarks.py OPTIONS): each is refused where it does not apply
    ap.add_argument("--search-mode", choices=("all", "indoor"), default=None,
                    help="SYSU-MM01: gallery of visible cameras 1,2,4,5 (all, default) or 1,2 (indoor)")
    ap.add_argument("--direction", choices=("visible_to_thermal", "thermal_to_visible"), default=None,
                    help="RegDB: query modality to gallery modality (default visible_to_thermal)")
    ap.add_argument("--boxes", choices=("labeled", "detected"), default=None,
                    help="CUHK03: hand-labeled or detected boxes (default labeled)")
    ap.add_argument("--cuhk03-layout", choices=("np", "classic"), default=None,
                    help="CUHK03: new protocol (CUHK03-NP folders) or the 20 classic splits of cuhk-03.mat "
                         "(default: what the folder holds)")
    ap.add_argument("--gallery-shot", choices=("multi", "single"), default=None,
                    help="PRCC: every camera-A image (multi, default) or one per identity, 10 trials (single)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtype", default=None, help="model dtype, e.g. bfloat16 (default: the checkpoint's)")
    ap.add_argument("--vis", type=int, default=8, help="ranked-list images for this many queries (0: none)")
    ap.add_argument("--vis-k", type=int, default=10, help="gallery images per ranked list")
    ap.add_argument("--metric", default=str(METRIC_PATH), help="the evaluate module folder (default: the repo's chatreid_metric)")
    ap.add_argument("--out", required=True, help="output folder")
    if fields:
        _preset(ap, fields)
        argv = [] if argv is None else argv
    args = ap.parse_args(argv)
    if args.task != "calibrate" and not args.model:
        ap.error(f"--task {args.task} needs --model")
    if args.tau is not None:
        try:
            args.tau = float(args.tau)
        except ValueError:
            pass  # 'auto' or a calibration file, read by the harness
    if args.label and len(args.label) != len(args.model or []):
        ap.error(f"{len(args.label)} --label for {len(args.model or [])} --model")
    if not 0 < args.target_recall <= 1:
        ap.error("--target-recall must be in (0, 1]")
    if args.sample < 1 or args.query_attributes < 1 or (args.queries is not None and args.queries < 1):
        ap.error("--sample, --query-attributes and --queries must be >= 1")
    if args.top_k is not None and args.top_k < 1:
        ap.error("--top-k must be >= 1")
    if not 2 <= args.window <= 9:
        ap.error("--window must be in 2..9 (best-choice needs at least two images to choose between)")
    if args.batch_size < 1:
        ap.error("--batch-size must be >= 1")
    return args


def _preset(ap, fields: dict) -> None:
    actions = {a.dest: a for a in ap._actions}
    unknown = sorted(set(fields) - set(actions))
    if unknown:
        raise ValueError(f"eval/run.py: no option {', '.join(unknown)}")
    for name, value in fields.items():
        actions[name].default, actions[name].required = value, False


def prefilter_for(args, model: str) -> str:
    """``--prefilter``, else what ``model`` runs with by default
    (``chatreid.retrieval.prefilter.default_prefilter``)."""
    from chatreid.retrieval.prefilter import default_prefilter

    return args.prefilter or default_prefilter(model)

"""``chatreid build-data`` and ``chatreid data validate``."""

from __future__ import annotations


def register(subparsers) -> None:
    b = subparsers.add_parser(
        "build-data", help="build stage 1/2/3 instruction data from an image store",
        description="Build a ChatReID instruction dataset (DatasetDict train/validation, split "
                    "by identity) from an image store; see docs/instructions.md.")
    b.add_argument("--stage", type=int, choices=(1, 2, 3), required=True)
    b.add_argument("--store", required=True, metavar="PATH_OR_REPO", help="image store")
    b.add_argument("--out", required=True, metavar="DIR", help="folder to write (must not exist)")
    b.add_argument("--size", type=int, help="rows in total (stage 2/3: required; stage 1: "
                                            "default every captioning row)")
    b.add_argument("--mix", nargs="+", metavar="TASK=WEIGHT", help="task weights (renormalised)")
    b.add_argument("--dataset-weight", nargs="+", metavar="DATASET=WEIGHT",
                   help="stages 2/3: weight of a dataset of the store on query sampling (default 1 each), "
                        "e.g. sysu_mm01=2 regdb=2 (the paper up-weights visible-infrared data in stage 2)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--num-proc", type=int, default=1, metavar="K", help="worker processes")
    b.add_argument("--val-fraction", type=float, default=0.05,
                   help="share of identities (and rows) in the validation split")
    b.add_argument("--paraphrase-prob", type=float, default=0.0,
                   help="probability of a paraphrased prompt instead of the paper's wording")
    b.add_argument("--gallery", type=int, nargs=2, metavar=("A", "B"),
                   help="gallery size N ~ Uniform{A..B} (stage 2 default 2 8, stage 3 1 10)")
    b.add_argument("--eq1", choices=("per_step", "inverse"), default="per_step",
                   help="Eq. 1 reading (number of true matches in a gallery): per_step (default) keeps "
                        "k = 2..N with probability 1/(k-1) each, a uniform number as the paper's "
                        "sentence asks; inverse draws P(m) ~ m^-power (docs/instructions.md)")
    b.add_argument("--match-power", type=float, default=1.0,
                   help="the inverse reading's power: P(m matches) ~ m^-power (1 = Eq. 1 as weights)")
    b.add_argument("--lookalike-negatives", type=float, default=0.0, metavar="P",
                   help="stages 2/3: share of the one-to-one image pairs' negatives drawn from people "
                        "with the same upper and lower colours (default 0, as the paper)")
    b.add_argument("--best-choice-none", type=float, default=0.3, metavar="P",
                   help="stage 3: share of the best-choice rows whose page holds no match, answered "
                        '"None" (default 0.3)')
    b.add_argument("--captioner", metavar="SPEC",
                   help="describes the images without captions or attributes, once per image: "
                        "transformers:MODEL or openai:MODEL@BASE_URL")
    b.add_argument("--caption-cache", metavar="FILE",
                   help="the captions (JSONL), shared by every build from the store; default "
                        "STORE.captions.jsonl beside a store folder (OUT.captions.jsonl for a Hub "
                        "store); without --captioner, the captions already there are used")
    b.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    b.add_argument("--push-to-hub", metavar="REPO", help="then push to this Hub dataset repo")
    b.add_argument("--private", action="store_true")
    b.set_defaults(func=_cmd_build)

    d = subparsers.add_parser("data", help="check built instruction data")
    sub = d.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    v = sub.add_parser("validate", help="re-check every answer of a built dataset against its store")
    v.add_argument("path", metavar="PATH_OR_REPO")
    v.add_argument("--store", required=True, metavar="PATH_OR_REPO")
    v.add_argument("--captions", metavar="FILE",
                   help="the build's chatreid_captions.json (default: the one in PATH, a folder or "
                        "Hub dataset, if any)")
    v.add_argument("--max-errors", type=int, help="stop after this many errors")
    v.add_argument("--show", type=int, default=50, help="errors to print (default 50)")
    v.set_defaults(func=_cmd_validate)


def _cmd_build(args) -> int:
    from chatreid.hub import push_from_command
    from chatreid.instructions import BuildConfig, build, parse_mix, push_to_hub
    from chatreid.instructions.config import parse_dataset_weights

    extra = {}
    if args.gallery:
        extra["gallery" if args.stage == 2 else "reid_gallery"] = tuple(args.gallery)
    cfg = BuildConfig(stage=args.stage, size=args.size, seed=args.seed,
                      mix=parse_mix(args.stage, args.mix), val_fraction=args.val_fraction,
                      paraphrase_prob=args.paraphrase_prob, eq1_reading=args.eq1, match_power=args.match_power,
                      lookalike_negatives=args.lookalike_negatives,
                      best_choice_none_prob=args.best_choice_none,
                      dataset_weights=parse_dataset_weights(args.dataset_weight), **extra)
    captioner = None
    if args.captioner:
        from chatreid.instructions.captioners import from_spec

        captioner = from_spec(args.captioner)
    info = build(args.store, args.out, cfg, num_proc=args.num_proc, overwrite=args.overwrite,
                 captioner=captioner, caption_cache=args.caption_cache)
    print(f"wrote {info['rows']['train']} train + {info['rows']['validation']} validation rows "
          f"to {args.out} in {info['seconds']['total']} s")
    for split, counts in info["tasks"].items():
        print(f"  {split}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for split, per_ds in info["text_rows"].items():
        print(f"  {split} text rows: " + ", ".join(f"{d}={n}" for d, n in per_ds.items()))
    if info.get("filters"):
        print("  stage 1 filters: " + ", ".join(f"{k}={v}" for k, v in info["filters"].items()))
    if args.push_to_hub:
        return push_from_command(lambda: push_to_hub(args.out, args.push_to_hub, private=args.private or None),
                                 args.push_to_hub, "chatreid build-data")
    return 0


def _cmd_validate(args) -> int:
    from chatreid.instructions import validate

    report = validate(args.path, args.store, captions=args.captions, max_errors=args.max_errors)
    print(report.format(limit=args.show))
    return 0 if report.ok else 1

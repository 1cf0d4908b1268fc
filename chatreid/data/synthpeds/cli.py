"""``chatreid synth``: write a SynthPeds world to disk in a benchmark's layout."""

from __future__ import annotations

import argparse


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 128x64, got {text!r}") from None
    return h, w


def register(subparsers) -> None:
    from chatreid.data.synthpeds.layouts import DEFAULT_IMAGES_PER_ID, LAYOUTS

    p = subparsers.add_parser(
        "synth", help="generate a synthetic pedestrian benchmark (SynthPeds)",
        description="Draw a procedural pedestrian world (identities, outfits, visible and infrared cameras) "
                    "and write it in the real on-disk layout of Market-1501, LTCC, SYSU-MM01 or CUHK-PEDES, "
                    "with the full ground truth in DIR/synthpeds.jsonl. Same seed, same bytes.")
    p.add_argument("--layout", choices=LAYOUTS, required=True, help="which benchmark's layout to write")
    p.add_argument("--ids", type=int, default=200, help="number of identities (default 200)")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--out", required=True, help="output folder (must be absent or empty unless --overwrite)")
    p.add_argument("--size", type=_size, default=(128, 64), help="crop size HxW (default 128x64)")
    p.add_argument("--images-per-id", type=int, default=None,
                   help="images per identity (default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_IMAGES_PER_ID.items()) + ")")
    p.add_argument("--distractors", type=int, default=0, metavar="N",
                   help="market layout: N gallery images of people outside the world, named with pid 0000 "
                        "(Market-1501's distractors; default 0)")
    p.add_argument("--junk", type=int, default=0, metavar="N",
                   help="market layout: N gallery images that are fragments of test people, named with pid -1 "
                        "(Market-1501's junk boxes, dropped by the reader; default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from chatreid.data.synthpeds.layouts import generate

    # an existing --out (FileExistsError) is a user error: chatreid.cli prints it in one line
    summary = generate(args.layout, args.out, args.ids, seed=args.seed, size=args.size,
                       images_per_id=args.images_per_id, overwrite=args.overwrite, progress=True,
                       distractors=args.distractors, junk=args.junk)
    splits = ", ".join(f"{k} {v}" for k, v in sorted(summary["splits"].items()))
    print(f"wrote {summary['images']} images ({splits}) to {summary['out']}")
    return 0

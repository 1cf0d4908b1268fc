"""``chatreid store build`` and ``chatreid store info``: the image store's commands."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("store", help="build, inspect and publish the image store")
    sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build an image store from benchmark folders")
    b.add_argument("--source", action="append", required=True, metavar="NAME[,K=V...]:PATH",
                   help="a reader name, its options and the dataset root, e.g. "
                        "market1501:/data/Market-1501 or cuhk03,version=detected:/data/cuhk03-np "
                        "(repeatable). Readers: market1501, msmt17, cuhk03, ltcc, prcc, sysu_mm01, "
                        "regdb, cuhk_pedes, icfg_pedes, rstpreid, synthpeds")
    b.add_argument("--out", required=True, help="folder to write (must not exist)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")
    b.add_argument("--skip-bad", action="store_true",
                   help="leave out bad/unreadable files and list them instead of stopping")
    b.add_argument("--push-to-hub", metavar="REPO", help="then push to this Hub dataset repo")
    b.add_argument("--private", action="store_true", help="make the pushed repo private")
    b.set_defaults(func=_cmd_build)
    i = sub.add_parser("info", help="counts per dataset, split, camera and modality")
    i.add_argument("store", metavar="PATH_OR_REPO")
    i.set_defaults(func=_cmd_info)


def _cmd_build(args) -> int:
    from chatreid.data.builder import build
    from chatreid.data.store import ImageStore, format_summary, parse_source
    from chatreid.hub import push_from_command

    sources = []
    for text in args.source:
        name, root, options = parse_source(text)
        if args.skip_bad:
            options.setdefault("skip_bad", True)
        sources.append((name, root, options))
    # an existing --out (FileExistsError) is a user error: chatreid.cli prints it in one line
    report = build(sources, args.out, skip_bad=args.skip_bad, overwrite=args.overwrite)
    print(f"wrote {report.num_images} images to {report.out}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} bad image(s):", file=sys.stderr)
        for path, reason in report.skipped:
            print(f"  {reason}", file=sys.stderr)
    print(format_summary(ImageStore.load(report.out).summary()))
    if args.push_to_hub:
        return push_from_command(lambda: ImageStore.load(report.out).push_to_hub(args.push_to_hub, private=args.private or None),
                                 args.push_to_hub, "chatreid store build")
    return 0


def _cmd_info(args) -> int:
    from chatreid.data.store import ImageStore, format_summary

    print(format_summary(ImageStore.load(args.store).summary()))
    return 0

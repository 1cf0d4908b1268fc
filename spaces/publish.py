"""Publish a folder of this repository as a Hugging Face Space.

    python spaces/publish.py metric --repo-id USER/chatreid_metric [--private] [--dry-run DIR]
    python spaces/publish.py app --repo-id USER/chatreid [--private] [--dry-run DIR]

A target stages what its Space needs into a folder (here, never touching the sources), then
`publish_folder` creates the Space if needed and uploads the folder through `chatreid.hub.push_folder`,
the project's one push; every target (the app Space too) reuses it. A failed push prints why and
keeps the staged folder it names (push it later with `hf upload`, or stage again with --dry-run).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from chatreid.hub import PushError, push_folder

ROOT = Path(__file__).resolve().parent.parent


def stage_metric(dest: Path) -> Path:
    """The `chatreid_metric` Space: the evaluate module folder plus a copy of chatreid/metrics.py.

    The module imports `chatreid.metrics`; on a Space the app's folder is on the import path, so a
    vendored `chatreid/` package (metrics only, numpy only) stands in for the installed project.
    """
    src = ROOT / "chatreid_metric"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("chatreid_metric.py", "README.md", "app.py", "requirements.txt"):
        shutil.copy2(src / name, dest / name)
    pkg = dest / "chatreid"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text('"""Vendored from the ChatReID project: only chatreid.metrics."""\n')
    shutil.copy2(ROOT / "chatreid" / "metrics.py", pkg / "metrics.py")
    return dest


def stage_app(dest: Path) -> Path:
    """The ChatReID chat Space; its staging lives beside the app's files in spaces/app_space.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("chatreid_app_space", Path(__file__).with_name("app_space.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.stage_app(dest)


TARGETS = {"metric": stage_metric, "app": stage_app}


def publish_folder(
    folder: str | Path,
    repo_id: str,
    *,
    space_sdk: str = "gradio",
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Publish from the ChatReID repository",
    api=None,
) -> str:
    """Create the Space `repo_id` if needed and upload `folder` to it; returns the Space's URL.

    Raises PushError with the reason (offline, not logged in, no write access, network, ...).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PushError(f"{folder} is not a folder")
    if repo_id.count("/") != 1:
        raise PushError(f"--repo-id must look like USER/NAME, got {repo_id!r}")
    return push_folder(folder, repo_id, repo_type="space", what="Space", space_sdk=space_sdk, private=private,
                       token=token, commit_message=commit_message, api=api)


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 published (or staged), 1 the push failed (the staged copy is kept and named),
    2 bad input (one line)."""
    from chatreid.usage import ArgumentParser

    parser = ArgumentParser(prog="spaces/publish.py",
                            description="Publish a folder of this repository as a Hugging Face Space.")
    parser.add_argument("target", choices=sorted(TARGETS), help="what to publish")
    parser.add_argument("--repo-id", required=True, help="USER/NAME of the Space")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    parser.add_argument("--dry-run", metavar="DIR", default=None, help="stage into DIR and stop")
    args = parser.parse_args(argv)
    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        parser.error(f"--repo-id must look like USER/NAME, got {args.repo_id!r}")

    if args.dry_run:
        staged = TARGETS[args.target](Path(args.dry_run))
        print(f"staged {args.target} Space in {staged}")
        return 0
    # staged outside the sources; removed after a successful push, kept (and named) after a failed one
    staged = TARGETS[args.target](Path(tempfile.mkdtemp(prefix=f"chatreid-{args.target}-space-")))
    try:
        url = publish_folder(staged, args.repo_id, private=args.private, token=args.token)
    except PushError as err:
        print(f"publish {args.target}: error: {err}", file=sys.stderr)
        return 1
    shutil.rmtree(staged, ignore_errors=True)
    print(f"published {args.target} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

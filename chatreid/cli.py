"""The ``chatreid`` command line: ``python -m chatreid <command> ...`` or ``chatreid <command>``.

One convention for every command: it lives in a module named ``cli.py`` in the package of the
code it drives (``chatreid/data/cli.py``, ``chatreid/data/synthpeds/cli.py``,
``chatreid/instructions/cli.py``). That module, listed in COMMANDS, exposes
``register(subparsers)``, which adds its sub-parser and sets ``func`` (called with the parsed
arguments, returning an exit code); the library modules themselves know nothing of argparse. Modules are imported only when listed, so ``--help`` stays fast
enough and one module's heavy imports do not slow another command.

Bad input ends in one line and exit status 2, as at every entry point (``chatreid.usage``).
"""

from __future__ import annotations

import argparse
import importlib
import os

from chatreid.usage import ArgumentParser, user_error

# Modules that contribute sub-commands, in the order --help lists them.
COMMANDS: list[str] = [
    "chatreid.data.cli",
    "chatreid.data.synthpeds.cli",
    "chatreid.instructions.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="chatreid",
        description="ChatReID: interactive, VLM-driven person re-identification.",
    )
    from chatreid import __version__

    parser.add_argument("--version", action="version", version=f"chatreid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, KeyError) as err:
        # User errors (bad paths, bad fields, unwritable folders) get one clear line, not a traceback.
        return user_error(f"chatreid {args.command}", err)

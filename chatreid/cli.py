"""The ``chatreid`` command line: ``python -m chatreid <command> ...`` or ``chatreid <command>``.

One convention for every command: it lives in a module named ``cli.py`` in the package of the
code it drives (``chatreid/data/cli.py``, ``chatreid/data/synthpeds/cli.py``,
``chatreid/instructions/cli.py``). That module, listed in COMMANDS, exposes
``register(subparsers)``, which adds its sub-parser and sets ``func`` (called with the parsed
arguments, returning an exit code); the library modules themselves know nothing of argparse. Modules are imported only when listed, so ``--help`` stays fast
enough and one module's heavy imports do not slow another command.

Every entry point of the project (this command, ``app.py``, ``eval/run.py``, ``train/*.py``,
``spaces/publish.py``) ends bad input the same way: one line on stderr, exit status 2. Their
parsers mix in :class:`OneLineErrors`; the user errors the commands raise are printed the same way.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that contribute sub-commands, in the order --help lists them.
COMMANDS: list[str] = [
    "chatreid.data.cli",
    "chatreid.data.synthpeds.cli",
    "chatreid.instructions.cli",
]


USAGE_ERROR = 2  # bad input, as argparse itself exits


class OneLineErrors:
    """Mixed into an ``argparse.ArgumentParser`` (or transformers' and TRL's subclasses): a usage
    error is one line, ``PROG: error: MESSAGE (PROG --help lists the options)``, and exit status 2,
    instead of argparse's usage block (a dozen lines for eval/run.py) above the message."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


class ArgumentParser(OneLineErrors, argparse.ArgumentParser):
    """The project's argument parser (sub-parsers made from it share its one-line errors)."""


def dataclass_parser(base, dataclass_types, **kwargs):
    """``base`` (transformers' ``HfArgumentParser`` or TRL's ``TrlParser``) over ``dataclass_types``,
    with one-line errors. Its ``--no_X`` flags say that they turn ``X`` off: transformers copies
    ``X``'s own help onto them ("Start from ImageNet weights" on ``--no_pretrained``)."""
    parser = type(base.__name__, (OneLineErrors, base), {})(dataclass_types, **kwargs)
    for action in parser._actions:
        if isinstance(action, argparse._StoreFalseAction) and action.option_strings[0] == f"--no_{action.dest}":
            action.help = f"turn --{action.dest} off (it is on by default)"
            action.default = argparse.SUPPRESS  # the --X flag sets the default; this one only says "off"
    return parser


def user_error(prog: str, err: BaseException) -> int:
    """A user error a command raised (a missing path, a bad value): its first line on stderr,
    prefixed with the command; returns exit status 2."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    print(f"{prog}: error: {first}", file=sys.stderr, flush=True)
    return USAGE_ERROR


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

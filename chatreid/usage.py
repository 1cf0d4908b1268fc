"""How every entry point reports bad input: one line on stderr and exit status 2.

The entry points (``chatreid ...``, ``app.py``, ``eval/run.py``, ``train/*.py``,
``spaces/publish.py``) build their parsers here, so a usage error is one line, not argparse's
usage block above the message, and print the user errors they catch with ``user_error``.
"""

from __future__ import annotations

import argparse
import sys

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


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def user_error(prog: str, err: BaseException) -> int:
    """A user error a command raised (a missing path, a bad value): its first line on stderr,
    prefixed with the command; returns exit status 2."""
    print(f"{prog}: error: {first_line(err)}", file=sys.stderr, flush=True)
    return USAGE_ERROR


def port_number(text: str) -> int:
    """``--port``: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, not {text!r}")
    return port

"""The body of ``train/baseline.py`` and ``train/text_prefilter.py``: parse the options, train,
say what was written, then push it (after the local save, so a failed push keeps the folder)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Callable


def run(script: str, arguments, train: Callable, summary: Callable, what: str, commit_message: str,
        argv=None) -> int:
    """``train(args)`` must return something ``summary`` turns into ``(message, folder)``.
    Exit codes: 0 done, 2 a user error (one line), 3 saved but the push failed."""
    from transformers import HfArgumentParser

    from chatreid.usage import dataclass_parser, user_error
    from chatreid.hub import PushError, push_folder

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        (args,) = dataclass_parser(HfArgumentParser, arguments, prog=script).parse_args_into_dataclasses(args=argv)
    except ValueError as err:  # the dataclass's own checks of the options
        return user_error(script, err)
    try:
        message, folder = summary(train(args))
    except (ValueError, OSError) as err:  # user errors: one line, no traceback
        return user_error(script, err)
    print(message, flush=True)
    if args.push_to_hub:
        repo_id = args.hub_model_id or Path(os.path.abspath(args.out)).name
        try:
            push_folder(folder, repo_id, what=what, private=args.hub_private_repo, token=args.hub_token,
                        commit_message=commit_message)
        except PushError as err:
            print(f"push failed; the {what} is kept at {folder} ({err})", file=sys.stderr, flush=True)
            return 3
    return 0

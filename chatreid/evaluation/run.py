"""The whole evaluation of ``eval/run.py``: each ``--task`` goes to its own module.

Its own module so that the task modules (calibration, the sec. 4.2 evaluations) can import the
harness's helpers without the harness importing them back.
"""

from __future__ import annotations


def run(args) -> int:
    """The evaluation from parsed ``args`` (``chatreid.evaluation.arguments.parse_args``); returns
    the exit code (2: bad input, one line on stderr, before any model where it can be)."""
    if args.task == "calibrate":
        from chatreid.evaluation.calibration import calibrate

        return calibrate(args)
    if args.task in ("attribute", "multimodal"):
        from chatreid.evaluation.retrieval_tasks import run_task

        return run_task(args)
    from chatreid.evaluation.harness import run_reid

    return run_reid(args)

"""What every Hub-facing part of ChatReID shares: the offline switch, the one error a failed push
raises, and one clear line when a dataset cannot come from the Hub.

The image store, the instruction datasets and the training checks all load "a folder or a Hub id";
keeping the Hub side here means they fail the same way, with the same words.
"""

from __future__ import annotations

import os


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it, but read now (tests and users set it late)."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


class PushError(RuntimeError):
    """A push to the Hub failed; the message says where the intact local copy is."""


def load_hub_dataset(repo_id: str, what: str, *, revision=None, token=None, error=ValueError):
    """``datasets.load_dataset(repo_id)``, or ``error`` with one line naming ``what`` and why."""
    import datasets

    kwargs = {"revision": revision}
    if token is not None:
        kwargs["token"] = token
    try:
        return datasets.load_dataset(repo_id, **kwargs)
    except Exception as err:  # noqa: BLE001 - the Hub raises many kinds; one clear line for all
        hint = " (HF_HUB_OFFLINE is set and no cached copy exists)" if offline() else ""
        raise error(f"cannot load {what} {repo_id!r}: no such local folder, and not from the Hub{hint}: "
                    f"{type(err).__name__}: {err}".splitlines()[0]) from err

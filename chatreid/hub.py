"""Everything of ChatReID that talks to the Hub: whether a name is a local path or a Hub id
(``looks_local``, ``check_local``), the offline switch, one clear line when a dataset cannot come
from the Hub, and the one way to push (``push_dataset``, ``push_folder``).

The image store, the instruction datasets, the trained checkpoints and the Spaces all go through
here, so they fail the same way, with the same words. The push contract: the local copy is only
ever read, and any failure raises one ``PushError`` naming the repo, the cause and where the
untouched local copy is. Callers decide what a failure means for them (an exit code, a message).
"""

from __future__ import annotations

import difflib
import os
import re

# A Hub repo id: owner/name, each part of letters, digits, '-', '_' and '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# The project's own folders (models/ ships the demo; the others are where the README writes):
# a name under one of them is a path, even where the folder is missing.
LOCAL_ROOTS = ("models", "data", "runs", "stores")


def looks_local(name: str | os.PathLike) -> bool:
    """True when ``name`` is meant as a path on this machine, not a Hub id: it exists; it starts
    with ``.``, ``/``, ``~`` or one of the project's folders (``models/``, ``data/``, ``runs/``,
    ``stores/``); it holds a backslash or more than one ``/``; it is not ``owner/name``; or its
    first part is a folder here (``out/stage1`` beside an existing ``out/``). Every loader asks
    this one question before any Hub request, so a mistyped path fails at once instead of after
    the Hub client's retries."""
    text = os.fspath(name)
    if os.path.exists(text) or text.startswith((".", "/", "~")) or "\\" in text:
        return True
    if text.split("/")[0] in LOCAL_ROOTS or not _HUB_ID.match(text):
        return True
    return os.path.isdir(text.split("/")[0])


def check_local(name: str | os.PathLike, what: str, hint: str = "") -> bool:
    """``True`` when ``name`` is a local path that exists, ``False`` when it is a Hub id; a local
    path that does not exist raises ``FileNotFoundError``: one line naming ``what`` and the path,
    the nearest existing name beside it, then ``hint`` (how to make it). No Hub request is made."""
    text = os.fspath(name)
    if not looks_local(text):
        return False
    if os.path.exists(os.path.expanduser(text)):
        return True
    path = os.path.expanduser(text.rstrip("/\\")) or text
    parent, base = os.path.split(path)
    near = ""
    if os.path.isdir(parent or "."):
        close = difflib.get_close_matches(base, os.listdir(parent or "."), n=1)
        near = f"; did you mean {os.path.join(parent, close[0])}?" if close else ""
    else:
        missing = parent
        while os.path.dirname(missing) and not os.path.isdir(os.path.dirname(missing)):
            missing = os.path.dirname(missing)
        near = f": there is no folder {missing}"
    why = "the Hub was not asked: a Hub id is owner/name" if "/" not in text else "the Hub was not asked"
    raise FileNotFoundError(f"{what} {text}: no such local path ({why}){near}" + (f"; {hint}" if hint else ""))


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it, but read now (tests and users set it late)."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


class PushError(RuntimeError):
    """A push to the Hub failed; the message names the repo, the cause and the intact local copy."""


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


def push_dataset(dataset, repo_id: str, *, local: str | os.PathLike, card: str | None = None,
                 files: dict[str, str | os.PathLike] | None = None, what: str = "dataset",
                 private: bool | None = None, token: str | None = None,
                 commit_message: str = "Upload ChatReID dataset",
                 card_message: str = "Dataset card") -> str:
    """Push a ``datasets.Dataset`` or ``DatasetDict`` to the dataset repo ``repo_id``, then, in one
    more commit, the card and ``files`` ({path in the repo: local file}, put beside the data): the
    card's body replaced by ``card``, keeping the YAML header that ``datasets`` wrote (features,
    splits). ``datasets`` has no way to add files to its own commit, so those go in the card's.
    ``local`` is where the dataset lives on disk, for the error message. Returns the repo's URL;
    raises ``PushError`` on any failure (saying when the rows reached the Hub and the rest did not)."""
    from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi

    rows_pushed = False
    try:
        # the files are read first: one that cannot be read stops the push before any upload
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.fspath(file))
                      for name, file in (files or {}).items()]
        dataset.push_to_hub(repo_id, private=private, token=token, commit_message=commit_message)
        rows_pushed = True
        if card is not None:
            hub_card = DatasetCard.load(repo_id, repo_type="dataset", token=token)
            hub_card.text = card
            operations.append(CommitOperationAdd(path_in_repo="README.md",
                                                 path_or_fileobj=str(hub_card).encode("utf-8")))
        if operations:
            HfApi(token=token).create_commit(repo_id, operations, commit_message=card_message,
                                             repo_type="dataset")
    except Exception as err:  # noqa: BLE001 - network, auth, offline, files: one error for all
        missing = ", ".join([*(files or {}), *(["README.md"] if card is not None else [])])
        raise push_failed(what, repo_id, local, err,
                          partly=f"the rows reached the Hub but {missing} did not (push again)"
                          if rows_pushed else "") from err
    return f"https://huggingface.co/datasets/{repo_id}"


def push_folder(folder: str | os.PathLike, repo_id: str, *, repo_type: str = "model", what: str = "folder",
                private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload from ChatReID", api=None, **create_kwargs) -> str:
    """Create the repo ``repo_id`` (of ``repo_type``: model, dataset or space) if needed and upload
    ``folder`` to it. ``create_kwargs`` go to ``create_repo`` (e.g. ``space_sdk``); ``api``: an
    ``HfApi`` (default: a new one with ``token``). Returns the repo's URL; raises ``PushError``."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **create_kwargs)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                          commit_message=commit_message)
    except Exception as err:  # noqa: BLE001 - network, auth, offline, files: one error for all
        raise push_failed(what, repo_id, folder, err) from err
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}.get(repo_type, f"{repo_type}s/")
    return str(getattr(url, "url", url) or f"https://huggingface.co/{prefix}{repo_id}")


def push_from_command(push, repo_id: str, command: str) -> int:
    """A ``chatreid`` sub-command's ``--push-to-hub``: run ``push()``; 0 and the dataset's address,
    or 1 and the ``PushError`` on one line of stderr (the local copy stays as it is)."""
    import sys

    try:
        push()
    except PushError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 1
    print(f"pushed to https://huggingface.co/datasets/{repo_id}")
    return 0


def push_failed(what: str, repo_id: str, local, err: BaseException, partly: str = "") -> PushError:
    """The ``PushError`` for ``err``: the repo, the cause in one line, what did reach the Hub
    (``partly``, when something did), the intact local copy."""
    return PushError(f"push of {what} {os.fspath(local)} to {repo_id!r} failed: {_cause(err)}; "
                     + (f"{partly}; " if partly else "") + f"the local copy at {os.fspath(local)} is intact")


def _cause(err: BaseException) -> str:
    """Why a push failed, in one line: offline mode, the Hub's HTTP answer, the network, or the error."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    first = (str(err).splitlines() or [""])[0]
    if isinstance(err, OfflineModeIsEnabled):
        return f"offline mode is on (HF_HUB_OFFLINE=1): unset it to push ({first})"
    if isinstance(err, HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        why = {
            401: "not logged in, or the token is invalid: run `hf auth login` or pass a token",
            403: "the token has no write access to this namespace",
            404: "the repository or namespace was not found",
        }.get(status, "the Hub refused the request")
        return f"{why} (HTTP {status}): {first}"
    if isinstance(err, OSError):  # network errors (httpx's are ConnectionError subclasses) and file errors
        return f"could not reach the Hub or read the local files ({type(err).__name__}: {first})"
    return f"{type(err).__name__}: {first}"

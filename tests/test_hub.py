"""chatreid.hub's one push contract, at the Hub client boundary (``HfApi`` faked): a push returns
the repo's URL; a failure raises one PushError naming the repo and the cause, the local copy untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from chatreid.hub import PushError, push_dataset, push_folder
from hub_fakes import FakeApi, hub_error


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "final"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "README.md").write_text("# card\n")
    return out


def test_push_folder_creates_the_repo_and_uploads(folder, monkeypatch):
    made = []
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: made.append(FakeApi(token)) or made[-1])
    push_folder(folder, "me/chatreid-s1", token="t0k", commit_message="stage 1")
    (api,) = made
    (create, repo, kw), (upload, repo2, kw2) = api.calls
    assert (create, repo, kw["repo_type"], kw["exist_ok"]) == ("create_repo", "me/chatreid-s1", "model", True)
    assert (upload, repo2, kw2["repo_type"], kw2["commit_message"]) == ("upload_folder", "me/chatreid-s1", "model",
                                                                        "stage 1")
    assert api.token == "t0k" and api.uploaded == ["README.md", "config.json"]


@pytest.mark.parametrize("fail, cause", [(hub_error(401), "not logged in"), (hub_error(403), "no write access"),
                                         (ConnectionError("connection refused"), "could not reach the Hub"),
                                         (RuntimeError("odd\nsecond line"), "RuntimeError: odd")])
def test_push_folder_failure_names_repo_and_cause_and_keeps_the_folder(folder, fail, cause):
    before = _digest(folder)
    with pytest.raises(PushError) as info:
        push_folder(folder, "me/chatreid-s1", what="checkpoint", api=FakeApi(fail=fail))
    message = str(info.value)
    assert "'me/chatreid-s1'" in message and cause in message and f"local copy at {folder} is intact" in message
    assert "\n" not in message
    assert _digest(folder) == before


def test_push_dataset_offline_is_a_push_error_and_the_saved_copy_is_untouched(tmp_path):
    # HF_HUB_OFFLINE=1 (conftest): the real client refuses before any network
    import datasets

    local = tmp_path / "rows"
    datasets.Dataset.from_dict({"x": [1, 2, 3]}).save_to_disk(str(local))
    before = _digest(local)
    with pytest.raises(PushError) as info:
        push_dataset(datasets.load_from_disk(str(local)), "me/rows", local=local, card="# rows\n")
    assert "'me/rows'" in str(info.value) and f"local copy at {local} is intact" in str(info.value)
    assert _digest(local) == before


def test_a_command_push_says_where_or_why_in_one_line(capsys):
    from chatreid.hub import PushError, push_from_command

    calls = []
    assert push_from_command(lambda: calls.append(1), "me/market", "chatreid store build") == 0
    assert calls == [1] and "https://huggingface.co/datasets/me/market" in capsys.readouterr().out

    def refused():
        raise PushError("could not push the image store to me/market: HTTP 401; the local copy is intact")

    assert push_from_command(refused, "me/market", "chatreid build-data") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("chatreid build-data: error: could not push")

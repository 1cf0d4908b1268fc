"""spaces/publish.py at the Hub client boundary: HfApi is faked; nothing leaves the machine."""

from pathlib import Path

import pytest

from chatreid.hub import PushError
from hub_fakes import FakeApi, hub_error, load_publish

ROOT = Path(__file__).resolve().parent.parent
publish = load_publish()


def test_stage_metric_vendors_the_metric_code(tmp_path):
    staged = publish.stage_metric(tmp_path / "space")
    files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    assert files == ["README.md", "app.py", "chatreid/__init__.py", "chatreid/metrics.py",
                     "chatreid_metric.py", "requirements.txt"]
    assert (staged / "chatreid/metrics.py").read_text() == (ROOT / "chatreid/metrics.py").read_text()
    assert (staged / "README.md").read_text().startswith("---\ntitle:")


def test_publish_folder_creates_a_gradio_space_and_uploads(tmp_path):
    staged = publish.stage_metric(tmp_path / "space")
    api = FakeApi()
    url = publish.publish_folder(staged, "me/chatreid_metric", api=api)
    assert url == "https://huggingface.co/spaces/me/chatreid_metric"
    (name, repo, kw), (name2, repo2, kw2) = api.calls
    assert (name, repo, kw["repo_type"], kw["space_sdk"], kw["exist_ok"]) == (
        "create_repo", "me/chatreid_metric", "space", "gradio", True)
    assert (name2, repo2, kw2["repo_type"]) == ("upload_folder", "me/chatreid_metric", "space")
    assert "chatreid/metrics.py" in api.uploaded and "app.py" in api.uploaded


@pytest.mark.parametrize("status, reason", [(401, "not logged in"), (403, "no write access"), (500, "refused")])
def test_failed_push_says_why_and_keeps_local_files(tmp_path, status, reason):
    staged = publish.stage_metric(tmp_path / "space")
    with pytest.raises(PushError, match=reason):
        publish.publish_folder(staged, "me/chatreid_metric", api=FakeApi(fail=hub_error(status)))
    assert (staged / "chatreid_metric.py").is_file()


def test_network_error_is_explained(tmp_path):
    with pytest.raises(PushError, match="could not reach the Hub"):
        publish.publish_folder(tmp_path, "me/x", api=FakeApi(fail=ConnectionError("connection refused")))


def test_cli_uses_the_hub_client(monkeypatch, capsys):
    made = []
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: made.append(FakeApi(token)) or made[-1])
    assert publish.main(["metric", "--repo-id", "me/chatreid_metric", "--token", "t0k"]) == 0
    assert made[0].token == "t0k" and [c[0] for c in made[0].calls] == ["create_repo", "upload_folder"]
    assert "published metric to https://huggingface.co/spaces/me/chatreid_metric" in capsys.readouterr().out

    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: FakeApi(fail=hub_error(401)))
    assert publish.main(["metric", "--repo-id", "me/chatreid_metric"]) == 1
    assert "not logged in" in capsys.readouterr().err


def test_offline_push_fails_with_a_clear_line(monkeypatch, capsys):
    # the real client, in offline mode (tests run with HF_HUB_OFFLINE=1): refused before any network
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert publish.main(["metric", "--repo-id", "me/chatreid_metric"]) == 1
    assert "offline mode is on" in capsys.readouterr().err


def test_bad_repo_id_and_dry_run(tmp_path, capsys):
    with pytest.raises(PushError, match="USER/NAME"):
        publish.publish_folder(tmp_path, "no-namespace", api=FakeApi())
    assert publish.main(["metric", "--repo-id", "me/x", "--dry-run", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "chatreid_metric.py").is_file()

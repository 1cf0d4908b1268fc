"""The app's Hugging Face Space: what is staged, and a failed push that says why.

The Hub is never contacted: ``huggingface_hub.HfApi`` is replaced by fakes at the client boundary.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from hub_fakes import FakeApi, hub_error, load_publish

ROOT = Path(__file__).resolve().parent.parent


def _front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_stage_app_space(tmp_path):
    publish = load_publish()
    staged = publish.TARGETS["app"](tmp_path / "space")
    meta = _front_matter(staged / "README.md")
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert (staged / meta["app_file"]).is_file()
    assert meta["models"] and isinstance(meta["models"], list)
    assert meta["sdk_version"] == version("gradio")  # the version the tests ran
    # what app.py imports and serves is there; nothing compiled or hidden is
    assert (staged / "chatreid" / "chat" / "settings.py").is_file()
    assert (staged / "chatreid" / "chat" / "conversation.py").is_file()
    assert (staged / "examples" / "manifest.json").is_file()
    assert not list(staged.rglob("__pycache__"))
    reqs = (staged / "requirements.txt").read_text()
    assert "transformers" in reqs and "+cpu" not in reqs and "gradio" not in reqs.split("#")[0]
    # the sources were copied, not moved
    assert (ROOT / "app.py").is_file() and (ROOT / "examples" / "manifest.json").is_file()


@pytest.mark.parametrize("status,why", [(401, "not logged in"), (403, "no write access")])
def test_failed_app_push_says_why(tmp_path, monkeypatch, capsys, status, why):
    publish = load_publish()
    import huggingface_hub

    fake = FakeApi(fail=hub_error(status))
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: fake)
    code = publish.main(["app", "--repo-id", "someone/chatreid"])
    assert code == 1
    err = capsys.readouterr().err
    assert "publish app: error:" in err and why in err and f"HTTP {status}" in err
    assert fake.calls[0][0] == "create_repo" and fake.calls[0][2]["space_sdk"] == "gradio"


def test_app_push_uploads_the_staged_folder(tmp_path, monkeypatch, capsys):
    publish = load_publish()
    import huggingface_hub

    fake = FakeApi()
    seen = {}

    def upload_folder(**kw):
        # the folder exists while uploading and holds the Space's entry point
        seen["files"] = sorted(p.name for p in Path(kw["folder_path"]).iterdir())
        fake.calls.append(("upload_folder", kw["repo_id"], kw))

    fake.upload_folder = upload_folder
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: fake)
    assert publish.main(["app", "--repo-id", "someone/chatreid"]) == 0
    assert "published app to https://huggingface.co/spaces/someone/chatreid" in capsys.readouterr().out
    assert {"app.py", "README.md", "requirements.txt", "chatreid", "examples"} <= set(seen["files"])
    assert fake.calls[1][2]["repo_type"] == "space"

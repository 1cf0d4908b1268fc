"""The Hub's network boundary, faked for spaces/publish.py's tests: nothing leaves the machine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_publish():
    """spaces/publish.py is a script, not a package module: load it by path."""
    spec = importlib.util.spec_from_file_location("chatreid_publish", ROOT / "spaces" / "publish.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hub_error(status: int):
    """The error huggingface_hub raises for an HTTP ``status`` from the Hub."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    return HfHubHTTPError(f"{status} Client Error", response=httpx2.Response(status, request=request))


class FakeApi:
    """``HfApi`` stand-in: records ``(method, repo_id, kwargs)`` per call and the files an upload
    found in its folder; ``create_repo`` raises ``fail`` when given."""

    def __init__(self, token=None, fail=None):
        self.token, self.fail, self.calls, self.uploaded = token, fail, [], []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))
        if self.fail:
            raise self.fail
        return f"https://huggingface.co/spaces/{repo_id}"

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw["repo_id"], kw))
        self.uploaded = sorted(p.relative_to(kw["folder_path"]).as_posix()
                               for p in Path(kw["folder_path"]).rglob("*") if p.is_file())

"""The Hub's network boundary, faked for the push and load tests: nothing leaves the machine."""

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


def hub_error(status: int, kind=None):
    """The error huggingface_hub raises for an HTTP ``status`` from the Hub (``kind``: which
    ``HfHubHTTPError`` subclass, e.g. ``RemoteEntryNotFoundError`` for a missing file)."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    return (kind or HfHubHTTPError)(f"{status} Client Error", response=httpx2.Response(status, request=request))


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


class FakeHub:
    """Dataset repos as folders under ``root``, behind the calls that reach the network:
    ``Dataset``/``DatasetDict.push_to_hub`` (saves the rows and a card with a YAML header, as ``datasets``
    does), ``DatasetCard.load``, ``HfApi.create_commit`` (writes each operation's bytes; raises
    ``fail_commit`` when set), ``datasets.load_dataset`` and ``hf_hub_download`` (a missing file is
    the Hub's 404). ``commits``: (repo, message, paths) per commit."""

    def __init__(self, root, monkeypatch, fail_commit=None):
        import datasets
        import huggingface_hub
        from huggingface_hub.errors import RemoteEntryNotFoundError

        self.root, self.commits, self.fail_commit = Path(root), [], fail_commit
        hub = self

        def push_rows(dsd, repo_id, **kw):
            dsd.save_to_disk(str(hub.repo(repo_id) / "data"))
            (hub.repo(repo_id) / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
            hub.commits.append((repo_id, kw.get("commit_message"), ["data", "README.md"]))

        class Api:
            def __init__(self, token=None):
                self.token = token

            def create_commit(self, repo_id, operations, *, commit_message, repo_type=None, **kw):
                assert repo_type == "dataset"
                if hub.fail_commit is not None:
                    raise hub.fail_commit
                for op in operations:
                    with op.as_file() as f:
                        (hub.repo(repo_id) / op.path_in_repo).write_bytes(f.read())
                hub.commits.append((repo_id, commit_message, [op.path_in_repo for op in operations]))

        def download(repo_id, filename, *, repo_type=None, **kw):
            assert repo_type == "dataset"
            path = hub.repo(repo_id) / filename
            if not path.is_file():
                raise hub_error(404, RemoteEntryNotFoundError)
            return str(path)

        monkeypatch.setattr(datasets.Dataset, "push_to_hub", push_rows)
        monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", push_rows)
        monkeypatch.setattr(huggingface_hub.DatasetCard, "load",
                            classmethod(lambda cls, repo_id, **kw: cls((hub.repo(repo_id) / "README.md").read_text())))
        monkeypatch.setattr(huggingface_hub, "HfApi", Api)
        monkeypatch.setattr(datasets, "load_dataset",
                            lambda repo_id, **kw: datasets.load_from_disk(str(hub.repo(repo_id) / "data")))
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)

    def repo(self, repo_id: str) -> Path:
        return self.root / repo_id

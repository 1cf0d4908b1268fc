"""Test-wide settings: offline, no analytics, one thread, caches in a temp folder."""

import atexit
import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("CHATREID_TEST_HF_HOME"):
    os.environ["HF_HOME"] = os.environ["CHATREID_TEST_HF_HOME"]
else:  # this run's own cache, removed when the run ends (earlier runs left one each in /tmp)
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="chatreid-hf-")
    atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Qwen2-VL checkpoint (chatreid.model.tiny), built once per test session.

    Load it with ``chatreid.model.load_model_and_processor(str(tiny_model_dir))``. Treat it as
    read-only: tests that modify a checkpoint should copy it first.
    """
    from chatreid.model.tiny import build_tiny_qwen2vl

    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny-qwen2vl"), seed=0)

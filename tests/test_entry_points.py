"""The first hour of a new user (issue 24, items 1-4), replayed: the README's training recipe, bad
input at every entry point (one line, exit status 2, no Hub request for a path that looks local),
a damaged benchmark image named as such, and the small untruths of the help, the docs and the
start-up lines."""

import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chatreid.hub import check_local, looks_local

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "models" / "chatreid-demo"


# -- 2. one decision for "a path here" versus "a Hub id" ------------------------------------------

@pytest.mark.parametrize("name, local", [
    ("Qwen/Qwen2-VL-2B-Instruct", False), ("me/chatreid-store", False),
    ("models/chatreid-dem", True), ("data/stage1", True), ("runs/stage1", True), ("stores/reid", True),
    ("./x", True), ("../x", True), ("/abs/path", True), ("~/x", True), ("a/b/c", True),
    ("a\\b", True), ("no-owner", True), ("tests/absent", True),  # tests/ is a folder here
])
def test_looks_local(name, local):
    assert looks_local(name) is local


def test_check_local_names_the_missing_path_and_the_nearest_one(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(FileNotFoundError) as err:
        check_local("models/chatreid-dem", "--model")
    assert str(err.value) == ("--model models/chatreid-dem: no such local path (the Hub was not asked); "
                              "did you mean models/chatreid-demo?")
    with pytest.raises(FileNotFoundError, match=r"there is no folder .*nowhere; make it"):
        check_local(str(tmp_path / "nowhere" / "store"), "image store", hint="make it")
    assert check_local(str(DEMO), "model") is True and check_local("me/x", "model") is False


class _Hub(http.server.BaseHTTPRequestHandler):
    """A stand-in Hub (HF_ENDPOINT) that answers 404 to everything and records what was asked."""

    requests: list = []

    def _answer(self):
        type(self).requests.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b'{"error": "Repository not found"}')

    do_GET = do_HEAD = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(tmp_path):
    _Hub.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{server.server_port}", HF_HUB_OFFLINE="0", PYTHONPATH=str(ROOT),
               HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1", GRADIO_ANALYTICS_ENABLED="False")
    yield env, _Hub.requests
    server.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from chatreid.data.synthpeds.layouts import generate

    return generate("market", tmp_path_factory.mktemp("world") / "market", 4, seed=2)["out"]


def _script(name):
    """A script of train/ or eval/ (not packages), imported by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"chatreid_script_{name.replace('/', '_')[:-3]}", ROOT / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_hub_call_for_a_path_that_looks_local(world, tmp_path, monkeypatch, capsys):
    """In process, with every way the loaders reach the Hub replaced by a recorder: each entry
    point refuses a mistyped local path in one line with exit status 2, and none is called; a
    Hub id does reach them (so the recorder works)."""
    import importlib
    import types

    import chatreid.data.store
    import chatreid.training.checks as checks
    from chatreid.cli import main as chatreid_main
    from chatreid.model import loading

    calls = []

    def hub(*args, **kwargs):
        calls.append(args[0] if args else kwargs)
        raise OSError("the test's Hub refuses")

    for module in (chatreid.data.store, importlib.import_module("chatreid.instructions.build"), checks):
        monkeypatch.setattr(module, "load_hub_dataset", hub)
    monkeypatch.setattr(checks, "_hub_model_error", hub)
    monkeypatch.setattr(loading, "AutoConfig", types.SimpleNamespace(from_pretrained=hub))
    monkeypatch.setattr(loading.ChatReIDQwen2VLProcessor, "from_pretrained", hub)
    monkeypatch.setattr("huggingface_hub.snapshot_download", hub)
    monkeypatch.chdir(ROOT)

    def one_line(code, prog):
        err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("INFO")]
        assert code == 2 and len(err) == 1 and err[0].startswith(f"{prog}: error: "), (prog, err)
        return err[0]

    line = one_line(_script("eval/run.py").main(["--model", "models/chatreid-dem", "--dataset",
                                                  f"synthpeds:{world}", "--out", str(tmp_path / "e")]), "eval/run.py")
    assert line.endswith("no such local path (the Hub was not asked); did you mean models/chatreid-demo?")
    sft = _script("train/sft.py")
    one_line(sft.cli(["--stage", "1", "--config", "train/configs/stage1.yaml", "--use_cpu", "true", "--bf16", "false",
                      "--base_model", str(DEMO), "--dataset_name", "data/no-such-stage1"]), "train/sft.py")
    one_line(sft.cli(["--stage", "1", "--config", "train/configs/stage1.yaml", "--use_cpu", "true", "--bf16", "false",
                      "--base_model", "models/no-such-base"]), "train/sft.py")
    one_line(_script("train/baseline.py").cli(["--store", "stores/no-such", "--out", str(tmp_path / "b")]),
             "train/baseline.py")
    one_line(_script("train/text_prefilter.py").cli(["--baseline", "runs/no-such", "--store", "x/y/z",
                                                      "--out", str(tmp_path / "t")]), "train/text_prefilter.py")
    one_line(chatreid_main(["store", "info", "data/no-such-store"]), "chatreid store")
    one_line(chatreid_main(["build-data", "--stage", "1", "--store", "./no-such", "--out", str(tmp_path / "d")]),
             "chatreid build-data")
    import app

    with pytest.raises(SystemExit) as exit_:
        app.main(["--model", "models/chatreid-dem"])
    one_line(exit_.value.code, "app.py")
    assert calls == []
    # a Hub id goes to the Hub: the recorder above would have seen a local path going there
    one_line(chatreid_main(["store", "info", "someone/absent-store"]), "chatreid store")
    with pytest.raises(OSError):
        loading.load_model("someone/absent-model")
    assert calls == ["someone/absent-store", "someone/absent-model"]


@pytest.mark.slow
def test_mistyped_local_paths_fail_in_one_line_with_no_hub_request(hub, world, tmp_path):
    """Every entry point, started as a user starts it, against a stand-in Hub: each ends in one
    line and exit status 2, and the Hub hears nothing (before the fix, eval/run.py alone spent
    23-27 s retrying it)."""
    env, requests = hub
    py = sys.executable
    commands = {
        "eval/run.py": [py, "eval/run.py", "--model", "models/chatreid-dem", "--dataset", f"synthpeds:{world}",
                        "--prefilter", "none", "--out", str(tmp_path / "eval")],
        "app.py": [py, "app.py", "--model", "models/chatreid-dem"],
        "train/sft.py": [py, "train/sft.py", "--stage", "1", "--config", "train/configs/stage1.yaml", "--bf16", "false",
                         "--dataset_name", "data/no-such-stage1",
                         "--image_store", "data/no-such-store", "--base_model", str(DEMO), "--use_cpu", "true",
                         "--output_dir", str(tmp_path / "run")],
        "train/baseline.py": [py, "train/baseline.py", "--store", "stores/no-such", "--out", str(tmp_path / "b")],
        "train/text_prefilter.py": [py, "train/text_prefilter.py", "--baseline", "runs/no-such",
                                    "--store", "stores/no-such", "--out", str(tmp_path / "t")],
        "chatreid store": [py, "-m", "chatreid", "store", "info", "data/no-such-store"],
        "chatreid build-data": [py, "-m", "chatreid", "build-data", "--stage", "1", "--store", "./no-such",
                                "--out", str(tmp_path / "d")],
        "spaces/publish.py": [py, "spaces/publish.py", "metric", "--repo-id", "no-namespace"],
    }
    procs = {k: subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, c in commands.items()}
    errs = {}
    for prog, proc in procs.items():
        errs[prog] = proc.communicate(timeout=240)[1]
        lines = errs[prog].strip().splitlines()
        assert proc.returncode == 2, (prog, errs[prog])
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), (prog, errs[prog])
    assert errs["eval/run.py"].strip().endswith("did you mean models/chatreid-demo?")
    assert "data/no-such-stage1: no such local path" in errs["train/sft.py"]
    assert requests == [], requests
    # the stand-in Hub does hear a Hub id: the check above could fail
    proc = subprocess.run([py, "-m", "chatreid", "store", "info", "someone/absent-store"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and requests and "someone/absent-store" in proc.stderr


def test_app_bad_options_are_one_line(monkeypatch, capsys):
    import app

    monkeypatch.setattr(app, "load_engine", lambda choice: pytest.fail("the model was loaded"))
    for argv, words in ((["--port", "-1"], "argument --port: a port is a whole number from 1 to 65535, not '-1'"),
                        (["--port", "http"], "not 'http'"),
                        (["--model", "/nonexistent"], "--model /nonexistent: no such local path")):
        with pytest.raises(SystemExit) as exit_:
            app.main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("app.py: error: ")
        assert words in err, err


def test_app_model_that_does_not_load_is_one_line(tmp_path, monkeypatch, capsys):
    import app

    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(SystemExit) as exit_:
        app.main(["--model", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1].startswith("app.py: error: ") and "bert" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_eval_usage_error_is_one_line(capsys):
    from chatreid.evaluation.arguments import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(["--model", "m", "--dataset", "d", "--out", "o", "--window", "1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("eval/run.py: error: --window")


# -- 1. the README's training section ------------------------------------------------------------

def _readme_recipe() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- cpu-recipe:[^>]*-->\n```bash\n(.*?)```", text, re.S)
    assert block, "README.md lost its marked CPU recipe"
    return block.group(1)


def test_readme_recipe_writes_what_the_stage1_config_reads():
    import yaml

    config = yaml.safe_load((ROOT / "train/configs/stage1.yaml").read_text())
    recipe = _readme_recipe()
    outs = set(re.findall(r"--out (\S+)", recipe))
    assert {config["dataset_name"], config["image_store"]} <= outs
    assert "accelerate launch --quiet" in recipe and "--config train/configs/stage1.yaml" in recipe
    for path in re.findall(r"(?:train|models)/[\w./-]+", recipe):
        assert (ROOT / path).exists(), path
    # what the recipe and the configs write stays out of git
    written = sorted(outs | {config["output_dir"] + "/final", "tiny/store"})
    ignored = subprocess.run(["git", "check-ignore", *written], cwd=ROOT, capture_output=True, text=True)
    assert sorted(ignored.stdout.split()) == written


def test_readme_gpu_command_on_a_cpu_says_what_to_add(tmp_path, monkeypatch, capsys):
    """The GPU command as the README prints it, then with the one line's advice taken, in a
    fresh folder: each time one line saying what to add, exit status 2."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the bf16 advice does not apply")
    sft_script = _script("train/sft.py")
    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "train/configs/stage1.yaml")
    assert sft_script.cli(["--stage", "1", "--config", config]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "add `--use_cpu true --bf16 false`" in err[0]
    args = ["--stage", "1", "--config", config, "--use_cpu", "true", "--bf16", "false", "--base_model", str(DEMO)]
    assert sft_script.cli(args) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("INFO")]
    assert err == ["train/sft.py: error: instruction dataset data/stage1: no such local path (the Hub was not "
                   "asked): there is no folder data; make it with `chatreid build-data` (README, \"Training\")"]


@pytest.mark.slow
def test_readme_cpu_recipe_runs_end_to_end(tmp_path):
    """The README's block, verbatim, in a fresh folder holding the repository's train/ and models/."""
    for name in ("train", "models"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-ec", _readme_recipe()], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "runs/stage1/final/config.json").is_file()


# -- 3. a damaged image in a benchmark folder ----------------------------------------------------

def test_truncated_benchmark_image_is_named(tiny_model_dir, world, tmp_path, capsys):
    import shutil

    run = _script("eval/run.py")
    root = tmp_path / "market"
    shutil.copytree(world, root)
    bad = sorted((root / "bounding_box_test").glob("*.jpg"))[0]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # cut mid-scan, as an interrupted copy leaves it
    rc = run.main(["--model", str(tiny_model_dir), "--dataset", f"synthpeds:{root}", "--prefilter", "none",
                   "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith(f"eval/run.py: error: {bad}: cannot read this image"), err
    assert str(tiny_model_dir) not in err[-1]  # the model is not blamed


# -- 4. small untruths ---------------------------------------------------------------------------

def test_no_pretrained_says_what_it_does():
    from transformers import HfArgumentParser

    from chatreid.baseline.train import BaselineArguments
    from chatreid.usage import dataclass_parser

    parser = dataclass_parser(HfArgumentParser, BaselineArguments, prog="train/baseline.py")
    text = parser.format_help()
    no = text[text.index("--no_pretrained, --no-pretrained"):].split("\n  --")[0]
    assert "ImageNet" not in no and "turn --pretrained off" in no
    parse = parser.parse_args_into_dataclasses
    assert [parse(args=["--out", "x", *a])[0].pretrained for a in ([], ["--no_pretrained"])] == [True, False]


def test_failed_space_push_keeps_the_copy_it_names(monkeypatch, capsys):
    import shutil

    from hub_fakes import FakeApi, hub_error, load_publish

    publish = load_publish()
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: FakeApi(fail=hub_error(401)))
    assert publish.main(["metric", "--repo-id", "me/chatreid_metric"]) == 1
    err = capsys.readouterr().err
    kept = Path(re.search(r"the local copy at (\S+) is intact", err).group(1))
    try:
        assert (kept / "chatreid_metric.py").is_file()
    finally:
        shutil.rmtree(kept)


def test_docs_name_the_search_inputs_the_api_takes():
    import inspect

    import app

    names = [p for p in inspect.signature(app.Handlers.search).parameters if p not in ("self", "progress")]
    row = next(line for line in (ROOT / "docs/app.md").read_text().splitlines() if line.startswith("| `/search`"))
    assert re.findall(r"`(\w+)`", row.split("|")[2]) == names


def test_start_up_lines_name_the_apps_own_option(monkeypatch, capsys):
    import socket

    import gradio as gr

    import app

    made = []

    def small_app(engine, choice, limits):
        with gr.Blocks() as blocks:
            gr.Markdown("ChatReID")
        blocks.chatreid_limits = limits
        made.append(blocks)
        return blocks

    monkeypatch.setattr(app, "load_engine", lambda choice: object())
    monkeypatch.setattr(app, "build_app", small_app)
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        app.main(["--port", str(port)])
        out = capsys.readouterr().out
    finally:
        for blocks in made:
            blocks.close()
    assert f"Running on local URL:  http://127.0.0.1:{port}/" in out
    assert "--share" in out and "share=True" not in out


def test_readme_install_steps_are_true():
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start"):readme.index("## Synthetic data")]
    assert "python3 -m venv .venv" in quick and ". .venv/bin/activate" in quick
    assert "--index-url https://download.pytorch.org/whl/cpu" in quick  # the CPU build, where it comes from
    assert "outside this environment" not in readme and "CPU build of torch" not in readme
    assert "torch==2.13.0\n" in (ROOT / "requirements.txt").read_text()  # a release pin, as the README says


def test_quiet_test_run_says_why_a_test_was_skipped(tmp_path):
    (tmp_path / "test_skip.py").write_text("import pytest\n\ndef test_x():\n    pytest.skip('no browser here')\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-c", str(ROOT / "pyproject.toml"),
                           "--rootdir", str(tmp_path), str(tmp_path / "test_skip.py")],
                          capture_output=True, text=True, timeout=120)
    assert "SKIPPED [1]" in proc.stdout and "no browser here" in proc.stdout, proc.stdout


def test_benchmarks_name_the_machine_not_the_tooling():
    text = (ROOT / "docs/benchmarks.md").read_text()
    assert "device tool" not in text and "one NVIDIA H100 80GB" in text

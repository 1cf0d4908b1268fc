"""Each fact has one home that the rest imports (issue 23): the retrieval tasks, the protocols, the
demo model's folder and the app's limits. These tests fail when a second copy appears."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from chatreid import metrics, paths, prompts, tasks

ROOT = Path(__file__).resolve().parent.parent


def _sources():
    for path in sorted([*ROOT.glob("chatreid/**/*.py"), *ROOT.glob("chatreid_metric/*.py"),
                        *ROOT.glob("spaces/*.py"), ROOT / "app.py"]):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def test_no_module_but_tasks_spells_out_the_task_vocabulary():
    # a literal collection (tuple, list, set, dict keys) naming three or more retrieval tasks is a copy
    names = set(tasks.TASKS) | {tasks.setting_name(t) for t in tasks.TASKS}
    copies = []
    for path, tree in _sources():
        if path == ROOT / "chatreid" / "tasks.py":
            continue
        for node in ast.walk(tree):
            items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
            if not isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)) or not items:
                continue
            found = {i.value for i in items if isinstance(i, ast.Constant) and i.value in names}
            if len(found) >= 3:
                copies.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert copies == []


def test_task_tables_cover_exactly_the_tasks():
    assert set(tasks.TASK_NAMES) == set(tasks.TASKS) == set(tasks.TASK_NEEDS)
    assert set(tasks.REID_TASKS) <= set(tasks.IMAGE_TASKS) <= set(tasks.TASKS)
    assert set(tasks.ATTRIBUTE_TASKS) == set(tasks.TASKS) - set(tasks.REID_TASKS)
    assert set(tasks.REID_PROMPT) == set(tasks.REID_TASKS)
    assert set(tasks.PROTOCOL_TASK.values()) <= set(tasks.TASKS)
    with pytest.raises(ValueError, match="unknown task 'cc'"):
        tasks.setting_name("cc")


def test_instruction_tasks_and_retrieval_tasks_are_two_vocabularies():
    assert not hasattr(prompts, "TASKS")  # the instruction tasks have their own name
    assert set(tasks.REID_PROMPT.values()) <= set(prompts.INSTRUCTION_TASKS)
    assert not set(prompts.INSTRUCTION_TASKS) & set(tasks.TASKS)


def test_the_users_of_the_task_names_import_them():
    from chatreid.chat import answers, conversation
    from chatreid.demo import config
    from chatreid.retrieval import query

    assert query.TASKS is tasks.TASKS and conversation.TASKS is tasks.TASKS
    assert answers.TASK_NAMES is tasks.TASK_NAMES
    # the demo report's setting words are the tasks' own, through the protocol each world is measured with
    assert config.SETTING == {"market": "standard", "ltcc": "cloth-changing", "sysu": "visible-infrared",
                              "pedes": "text-to-image"}


def test_every_protocol_has_a_task_and_the_metric_space_offers_the_same_protocols(monkeypatch):
    assert set(tasks.PROTOCOL_TASK) == set(metrics.PROTOCOLS)
    import evaluate

    monkeypatch.setattr(evaluate, "load", lambda *a, **k: None)  # the app loads its module at import
    spec = importlib.util.spec_from_file_location("metric_space_app", ROOT / "chatreid_metric" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert tuple(app.PROTOCOLS) == metrics.PROTOCOLS


def test_the_demo_model_folder_is_named_once(monkeypatch, tmp_path):
    from chatreid.chat import settings
    from chatreid.demo import driver

    assert settings.DEMO_MODEL_DIR == paths.demo_model_dir() == driver.DEFAULT_OUT
    monkeypatch.setenv(paths.ENV, str(tmp_path))
    assert paths.demo_model_dir() == tmp_path / paths.DEMO_MODEL
    spelled = [str(p.relative_to(ROOT)) for p, _ in _sources()
               if "chatreid-demo" in p.read_text(encoding="utf-8").replace('"""', "")
               and p != ROOT / "chatreid" / "paths.py"
               and any(isinstance(n, ast.Constant) and n.value == "chatreid-demo" for n in ast.walk(_))]
    assert spelled == []


def test_the_limits_have_one_table(monkeypatch):
    from dataclasses import fields

    from chatreid.chat import settings

    lim = settings.Limits()
    assert {f.name for f in fields(lim)} == {attr for attr, *_ in settings.SETTINGS.values()}
    for attr, default, _least, _what in settings.SETTINGS.values():
        assert getattr(lim, attr) == default


def test_the_upload_cap_has_its_own_name_and_the_old_variable_still_sets_it(monkeypatch):
    from chatreid.chat import settings

    assert not hasattr(settings.Limits(), "max_pixels")  # the processor's cap is the engine's max_pixels
    monkeypatch.setenv("CHATREID_MAX_PIXELS", "5000")
    assert settings.Limits.from_env().upload_max_pixels == 5000
    assert settings.Limits.unknown_settings() == []
    monkeypatch.setenv("CHATREID_UPLOAD_MAX_PIXELS", "6000")
    with pytest.raises(settings.SettingsError, match="CHATREID_MAX_PIXELS .5000. and CHATREID_UPLOAD_MAX_PIXELS .6000. disagree"):
        settings.Limits.from_env()
    monkeypatch.delenv("CHATREID_MAX_PIXELS")
    assert settings.Limits.from_env().upload_max_pixels == 6000

"""The layer rules of docs/architecture.md, checked on the package's import graph."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "chatreid"

# area -> the areas it may import (docs/architecture.md, "Layers")
FOUNDATIONS = {"atomic", "hub", "paths", "metrics", "usage", "viz", "__version__"}
ALLOWED = {
    **{a: FOUNDATIONS for a in FOUNDATIONS},
    "data": FOUNDATIONS,
    "prompts": FOUNDATIONS | {"data"},
    "instructions": FOUNDATIONS | {"data", "prompts"},
    "model": FOUNDATIONS | {"data", "prompts"},
    "training": FOUNDATIONS | {"data", "prompts", "instructions", "model"},
    "baseline": FOUNDATIONS | {"data", "prompts", "model"},
    "baselines": FOUNDATIONS | {"data"},
    "retrieval": FOUNDATIONS | {"data", "prompts", "model", "baseline", "baselines"},
    "evaluation": FOUNDATIONS | {"data", "prompts", "model", "baseline", "baselines", "retrieval"},
    "chat": FOUNDATIONS | {"data", "prompts", "model", "baseline", "baselines", "retrieval"},
}


def _area(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def _imports():
    """(importing area, imported area, file) for every chatreid import in the package."""
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        src = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chatreid"):
                names = [f"chatreid.{a.name}" for a in node.names] if node.module == "chatreid" else [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("chatreid.")]
            for name in names:
                yield src, _area(name), path


def test_every_area_imports_only_the_layers_it_may():
    wrong = sorted({f"{src} -> {dst} ({path.relative_to(PACKAGE.parent)})" for src, dst, path in _imports()
                    if src in ALLOWED and dst != src and dst not in ALLOWED[src]})
    assert not wrong, "imports against docs/architecture.md's layers:\n" + "\n".join(wrong)
    # the layers that must stay apart (besides what ALLOWED already says)
    assert all(not (s == "retrieval" and d in ("training", "chat", "evaluation")) for s, d, _ in _imports())


def test_no_module_loads_a_script_or_edits_sys_path():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for needle in ("sys.path", "spec_from_file_location", "run_path("):
            if needle in text:
                bad.append(f"{path.relative_to(PACKAGE.parent)}: {needle}")
    assert not bad, bad


def test_metrics_imports_numpy_only():
    tree = ast.parse((PACKAGE / "metrics.py").read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots <= {"numpy", "__future__", "typing", "collections", "dataclasses", "math", "warnings"}, roots

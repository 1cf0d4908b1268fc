"""The layer rules of docs/architecture.md, checked on the package's import graph."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "chatreid"

# area -> the areas it may import (docs/architecture.md, "Layers")
FOUNDATIONS = {"atomic", "hub", "paths", "metrics", "tasks", "usage", "viz", "__version__"}
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
# the demo build: everything above it, never the entry points
ALLOWED["demo"] = set().union(*ALLOWED.values()) | set(ALLOWED)
# the `chatreid` command lists each area's cli; `python -m chatreid` is only that command
ALLOWED["cli"] = ALLOWED["demo"] | {"demo"}
ALLOWED["__main__"] = {"cli"}


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


def test_every_area_is_covered():
    areas = {p.relative_to(PACKAGE).with_suffix("").parts[0] for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert areas <= set(ALLOWED), sorted(areas - set(ALLOWED))


def _module_graph():
    """module -> the chatreid modules it imports (lazy and annotation-only imports included, package
    ``__init__`` files left out: they re-export their submodules)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            modules[".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)] = path
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chatreid"):
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                            for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        graph[name] = targets & set(modules) - {name}
    return graph


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check itself
    graph = _module_graph()
    assert "chatreid.data.store" in graph["chatreid.data.builder"]  # the graph sees imports
    assert _cycles(graph) == []


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

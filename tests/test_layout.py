"""The package layout: vfi_core has no import cycles and never imports a front end.

The import graph is read from the source with :mod:`ast` (nothing is imported). Every import
counts, at module level or inside a function, and so does ``importlib.import_module("name")`` with
a literal name: an import deferred to run time still ties the two modules together. An import names
the most specific module it reaches: ``from .io import open_reader`` is an edge to ``vfi_core.io``,
``from . import registry`` one to ``vfi_core.registry``; the parent packages that Python runs first
are not edges (every submodule would otherwise form a cycle with its package's ``__init__``).

The front ends (``comfy_nodes``, ``gradio_app``) build on vfi_core, never the reverse; the `vfi app`
command reaches the web app through the ``vfi.commands`` entry point that pyproject.toml declares.
"""
from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("vfi_core", "comfy_nodes", "gradio_app")
CORE = "vfi_core"
FRONT_ENDS = ("comfy_nodes", "gradio_app")


def module_files(root: Path = REPO) -> dict[str, Path]:
    """Every module of :data:`PACKAGES` under ``root``, by dotted name (a package by its own name)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, known: set[str]) -> str:
    """The longest prefix of dotted ``name`` that is a module in ``known`` (``name`` if none is)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return name


def _imported_names(module: str, is_package: bool, tree: ast.AST) -> list[tuple[str, int]]:
    """The absolute dotted names ``module``'s code imports, each with its line."""
    package = module if is_package else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            # `from a import b` imports the module a.b when there is one, else the name b of a: the
            # longest known prefix of a.b (see _resolve) is the module reached either way
            names += [(stem if alias.name == "*" else f"{stem}.{alias.name}", node.lineno) for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
                   or isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))):
            names.append((node.args[0].value, node.lineno))
    return names


def import_graph(root: Path = REPO) -> dict[str, dict[str, int]]:
    """``{module: {imported module: first line}}`` over the modules of :data:`PACKAGES`; imported
    names outside them (the standard library, torch, ...) are kept by their top-level name."""
    files = module_files(root)
    known = set(files)
    graph: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: dict[str, int] = {}
        for name, line in _imported_names(module, path.name == "__init__.py", tree):
            target = _resolve(name, known)
            if target not in known:
                target = name.partition(".")[0]
            if target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]], within: str) -> list[list[str]]:
    """The strongly connected components of more than one module among the modules under ``within``
    (Tarjan's algorithm), each sorted."""
    nodes = sorted(m for m in graph if m == within or m.startswith(within + "."))
    inside = set(nodes)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in inside:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(nodes) + 100))
    try:
        for v in nodes:
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


def _describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(component)
    edges = [f"  {a} -> {b} (line {graph[a][b]})" for a in component for b in sorted(graph[a]) if b in members]
    return "\n".join([" <-> ".join(component), *edges])


def test_the_graph_sees_the_packages_and_their_imports():
    graph = import_graph()
    assert {"vfi_core", "vfi_core.pipeline", "vfi_core.io", "comfy_nodes", "gradio_app"} <= set(graph)
    assert "vfi_core.errors" in graph["vfi_core.pipeline"]          # from .errors import ...
    assert "vfi_core.io" in graph["vfi_core.pipeline"]              # inside a function
    assert "vfi_core.registry" in graph["vfi_core.commands.common"]  # from .. import registry, in a function
    assert "vfi_core.registry" in graph["gradio_app.app"]           # from vfi_core import registry
    assert "torch" in graph["vfi_core.pipeline"] and "vfi_core" in graph["vfi_core.cli"]  # a name of __init__


def test_cycles_are_found():
    graph = {"p": {}, "p.a": {"p.b": 1}, "p.b": {"p.c": 2}, "p.c": {"p.a": 3, "torch": 1}, "p.d": {"p.a": 1}}
    assert cycles(graph, "p") == [["p.a", "p.b", "p.c"]]


def test_vfi_core_has_no_import_cycles():
    graph = import_graph()
    found = cycles(graph, CORE)
    assert not found, "import cycles in vfi_core:\n" + "\n".join(_describe(c, graph) for c in found)


def test_vfi_core_imports_no_front_end():
    graph = import_graph()
    upward = [f"{module} -> {target} (line {line})" for module, edges in sorted(graph.items())
              if module == CORE or module.startswith(CORE + ".")
              for target, line in sorted(edges.items()) if target.partition(".")[0] in FRONT_ENDS]
    assert not upward, "vfi_core imports a front end:\n" + "\n".join(upward)


def test_the_quality_metrics_do_not_import_the_training_code():
    graph = import_graph()
    training = [target for target in graph["vfi_core.evaluation.metrics"]
                if target == "vfi_core.losses" or target.startswith("vfi_core.train")]
    assert not training, f"vfi_core.evaluation.metrics imports {training}"


def test_vfi_app_is_declared_as_an_entry_point_of_the_web_app():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    commands = project["project"]["entry-points"]["vfi.commands"]
    assert commands == {"app": "gradio_app.command:add_parser"}
    module, _, attribute = commands["app"].partition(":")
    source = ast.parse(module_files()[module].read_text())
    assert attribute in {node.name for node in source.body if isinstance(node, ast.FunctionDef)}


def test_the_cli_adds_the_commands_entry_points_declare(monkeypatch, capsys):
    from vfi_core import cli

    declared = [importlib.metadata.EntryPoint("app", "gradio_app.command:add_parser", cli.ENTRY_POINT_GROUP),
                importlib.metadata.EntryPoint("models", "gradio_app.command:add_parser", cli.ENTRY_POINT_GROUP),
                importlib.metadata.EntryPoint("broken", "no_such_module_here:add_parser", cli.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(cli.importlib.metadata, "entry_points",
                        lambda group: [e for e in declared if e.group == group])
    args = cli.build_parser().parse_args(["app", "--port", "8123"])
    assert args.port == 8123 and args.run.__module__ == "gradio_app.command"
    assert "'broken'" in capsys.readouterr().err                    # left out with a warning
    with pytest.raises(SystemExit):                                 # and it is not a command
        cli.build_parser().parse_args(["broken"])
    assert cli.build_parser().parse_args(["models"]).run.__module__ == "vfi_core.commands.models"

"""The layers hold: no package imports a layer above it, counting every import in its files
(module level, function-local, and `importlib.import_module("...")` with a literal name).

    kernels       imports none of world_models, envs, agents, benchmarks
    world_models  imports kernels (and libraries) only
    envs          imports none of world_models, agents, benchmarks
    agents        imports no benchmarks

And no module imports itself through others: the modules' import graph, with an edge for every
import form (`import a.b`, `from a import b` where b is a module, `from a.b import name`, relative
imports, function-local imports and import_module strings), has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kernels", "world_models", "envs", "agents", "benchmarks")
FORBIDDEN = {
    "kernels": {"world_models", "envs", "agents", "benchmarks"},
    "world_models": {"envs", "agents", "benchmarks"},
    "envs": {"world_models", "agents", "benchmarks"},
    "agents": {"benchmarks"},
}


def _imports(source: str, module: str):
    """(line, absolute module name, names imported from it, relative?) of every import in `source`, the file
    of module `module` (a.b.c); names is empty but for `from ... import names`."""
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, [], False
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's package upwards
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield node.lineno, name, [alias.name for alias in node.names], node.module is None
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _is_import_module(node.func)
        ):
            yield node.lineno, node.args[0].value, [], False


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, the file of module `module` (a.b.c)."""
    found = []
    for line, name, names, bare in _imports(source, module):
        found.append((line, name))
        if bare:  # `from .. import registry` names the module envs.registry
            found += [(line, f"{name}.{n}") for n in names]
    return found


def _is_import_module(func: ast.expr) -> bool:
    """`importlib.import_module(...)`, `import_module(...)` or `__import__(...)`."""
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in ("import_module", "__import__")


def violations(root: Path, package: str) -> list[str]:
    """`path:line imports module` for every import of a forbidden layer in `root/package`."""
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        for line, name in imported_modules(path.read_text(), module):
            if name.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(root)}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_a_layer_above_it(package):
    assert violations(ROOT, package) == []


@pytest.mark.parametrize(
    "line, name",
    [
        ("import agents.train", "agents.train"),
        ("from envs.dataset import load_episodes", "envs.dataset"),
        ("import envs as memwm_envs", "envs"),
        ("importlib.import_module('agents.runs')", "agents.runs"),
        ("__import__('envs')", "envs"),
    ],
)
def test_a_planted_import_of_a_higher_layer_is_found_even_inside_a_function(tmp_path, line, name):
    (tmp_path / "world_models").mkdir()
    clean = "import torch\nfrom world_models.model import OBS_KEYS\nimport kernels\n\n\ndef f():\n    import numpy\n"
    (tmp_path / "world_models" / "ok.py").write_text(clean)
    assert violations(tmp_path, "world_models") == []
    (tmp_path / "world_models" / "bad.py").write_text(f"import importlib\n\n\ndef f():\n    {line}\n")
    assert violations(tmp_path, "world_models") == [f"world_models/bad.py:5 imports {name}"]


def test_a_relative_import_counts_from_its_package(tmp_path):
    (tmp_path / "envs" / "memory").mkdir(parents=True)
    (tmp_path / "envs" / "memory" / "x.py").write_text("from .. import registry\nfrom ...agents import train\n")
    names = [n for _, n in imported_modules((tmp_path / "envs" / "memory" / "x.py").read_text(), "envs.memory.x")]
    assert names == ["envs", "envs.registry", "agents"]


def modules_of(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Module name -> file of every module under root/<package> (a package is its __init__.py)."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            out[".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")] = path
    return out


def module_graph(root: Path, packages=PACKAGES) -> dict[str, dict[str, int]]:
    """module -> {module it imports: line}, over the modules under root/<package>, for every import form.

    `from a import b` is an import of module a.b when a/b.py (or a/b/) exists, else of a; `import a.b.c`
    and `from a.b.c import name` of the longest of a.b.c, a.b, a that is a module here (libraries drop out).
    """
    modules = modules_of(root, packages)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        source_module = module + ".__init__" if path.name == "__init__.py" else module  # relative imports start here
        edges: dict[str, int] = {}
        for line, name, names, _ in _imports(path.read_text(), source_module):
            targets = [f"{name}.{n}" if f"{name}.{n}" in modules else name for n in names] or [name]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges[target] = min(line, edges.get(target, line))
        graph[module] = edges
    return graph


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle [a, b, ..., a] through each strongly connected set of modules (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(_cycle_in(graph, component) for component in components)


def _cycle_in(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """The shortest cycle through the first module (by name) of a strongly connected set."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    return paths[v] + [start]
                if w in component and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def _described(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_no_modules_import_each_other_in_a_cycle():
    graph = module_graph(ROOT)
    assert [_described(graph, c) for c in import_cycles(graph)] == []


PLANTED_FORMS = {
    "import a.b": "import pkg.b\n",
    "import a.b as x": "import pkg.b as other\n",
    "from a import b (a module)": "from pkg import b\n",
    "from a.b import name": "from pkg.b import NAME\n",
    "relative from . import b": "from . import b\n",
    "relative from .b import name": "from .b import NAME\n",
    "function-local": "def f():\n    from pkg.b import NAME\n\n    return NAME\n",
    "import_module string": "import importlib\n\n\ndef f():\n    return importlib.import_module('pkg.b')\n",
    "__import__ string": "def f():\n    return __import__('pkg.b')\n",
}


@pytest.mark.parametrize("form", sorted(PLANTED_FORMS))
def test_a_planted_cycle_is_found_for_every_import_form(tmp_path, form):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("VERSION = 1\n")
    (tmp_path / "pkg" / "c.py").write_text("from pkg import VERSION\nimport numpy\n")  # a name of the package, a library
    (tmp_path / "pkg" / "b.py").write_text("NAME = 1\n")
    (tmp_path / "pkg" / "a.py").write_text(PLANTED_FORMS[form])
    assert import_cycles(module_graph(tmp_path, ["pkg"])) == []  # a imports b: no cycle yet
    (tmp_path / "pkg" / "b.py").write_text("NAME = 1\n\n\ndef g():\n    from pkg import a\n\n    return a\n")
    graph = module_graph(tmp_path, ["pkg"])
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]], graph
    assert graph["pkg.c"] == {"pkg": 1}  # `from pkg import VERSION` is an import of pkg itself, not of a module pkg.VERSION


def test_a_longer_cycle_is_reported_in_import_order(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("from . import z\n")  # a package's own relative import
    (tmp_path / "pkg" / "x.py").write_text("import pkg.y\n")
    (tmp_path / "pkg" / "y.py").write_text("from pkg.sub import z\n")
    (tmp_path / "pkg" / "sub" / "z.py").write_text("from ..x import f\n")
    graph = module_graph(tmp_path, ["pkg"])
    assert graph["pkg.sub"] == {"pkg.sub.z": 1}
    assert import_cycles(graph) == [["pkg.sub.z", "pkg.x", "pkg.y", "pkg.sub.z"]]
    assert _described(graph, import_cycles(graph)[0]) == "pkg.sub.z (line 1) -> pkg.x (line 1) -> pkg.y (line 1) -> pkg.sub.z"


def test_only_the_cli_imports_the_commands():
    """agents/commands/ is the top of agents: a library module that needs a command's code gets it moved to a library module."""
    graph = module_graph(ROOT)
    users = {
        f"{m} (line {line}) imports {n}"
        for m, edges in graph.items()
        for n, line in edges.items()
        if n.startswith("agents.commands") and not m.startswith(("agents.commands", "agents.cli"))
    }
    assert sorted(users) == []

"""The layers hold: no package imports a layer above it, counting every import in its files
(module level, function-local, and `importlib.import_module("...")` with a literal name).

    kernels       imports none of world_models, envs, agents, benchmarks
    world_models  imports kernels (and libraries) only
    envs          imports none of world_models, agents, benchmarks
    agents        imports no benchmarks
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


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, the file of module `module` (a.b.c)."""
    found = []
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's package upwards
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if not node.module]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _is_import_module(node.func)
        ):
            found.append((node.lineno, node.args[0].value))
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


def _agent_module_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted((ROOT / "agents").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        names = {n for _, n in imported_modules(path.read_text(), module) if n.startswith("agents.")}
        graph[module] = names
    modules = set(graph)
    # `from agents import checkpoint` names a module; keep only names that are modules
    return {m: {n if n in modules else n.rsplit(".", 1)[0] for n in names} & modules - {m} for m, names in graph.items()}


def test_the_modules_of_agents_import_each_other_without_a_cycle():
    graph = _agent_module_graph()
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(n) :] + [n]))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])

"""The package's layers: no import cycles, and no import from a lower layer to a higher one.

Every ``import`` in ``src/mrtranslate`` is read with :mod:`ast`, module-level and inside
functions alike (a lazy import is still a dependency). A module's layer is that of its
top-level component (``mrtranslate.training.run`` -> ``training``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mrtranslate.architecture import layer_of

SRC = Path(__file__).resolve().parents[1] / "src" / "mrtranslate"

# Bottom to top: the one table (mrtranslate.architecture), also the docs' architecture page.
LAYER_OF = layer_of()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The mrtranslate modules that the module at ``path`` imports (resolved to known ones)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def resolve(target: str) -> str:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {resolve(a.name) for a in node.names if a.name.startswith("mrtranslate")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("mrtranslate"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else resolve(base))
    return {t for t in found if t and t != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_component_has_a_layer():
    missing = sorted({_component(m) for m in _modules()} - set(LAYER_OF))
    assert not missing, f"add these to LAYERS: {missing}"


def test_no_import_points_to_a_higher_layer():
    upward = []
    for module, targets in _graph().items():
        for target in targets:
            if LAYER_OF[_component(target)] > LAYER_OF[_component(module)]:
                upward.append(f"{module} -> {target}")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize(
    "package", ["runs", "inference", "evaluation", "reporting", "perceptual", "methods", "data"]
)
def test_readers_of_runs_never_import_training(package):
    for module, targets in _graph().items():
        if _component(module) == package:
            assert not [t for t in targets if _component(t) == "training"], module


def test_no_function_is_longer_than_60_lines():
    """Files stay small and single-purpose: no function or method over 60 lines."""
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(SRC)}:{node.name} ({lines} lines)")
    assert not long, long

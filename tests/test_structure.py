"""The package's shape: no import cycle between its packages, and no module importing another's private names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "unitrack"


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, ast.parse(path.read_text(), str(path))


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not those under ``if TYPE_CHECKING:`` nor the lazy
    ones inside functions (those are how heavy or optional packages stay out of ``import unitrack``)."""
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            yield from (n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom)))
        elif isinstance(node, ast.Try):
            yield from (n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: resolved against the importing package
        base = module.split(".")[: -node.level] if not module.endswith("__init__") else module.split(".")
        return [".".join([*base, node.module or ""]).rstrip(".")]
    return [node.module or ""]


def unit(module: str) -> str:
    """The package (or top-level module) of unitrack a module belongs to: unitrack.store.writer -> store."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_import_cycle_between_packages() -> None:
    """Between unitrack's packages (store, dispatch, distributed...) and top-level modules (tracker, config...)."""
    graph: dict[str, set[str]] = {}
    for module, tree in modules():
        for node in module_level_imports(tree):
            for target in imported(node, module):
                if target.startswith("unitrack.") and unit(target) != unit(module):
                    graph.setdefault(unit(module), set()).add(unit(target))
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [*path, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles between packages: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_another_modules_private_names() -> None:
    offences = []
    for module, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("unitrack"):
                for alias in node.names:
                    if alias.name.startswith("_") and node.module != module:
                        offences.append(f"{module}: from {node.module} import {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if any(part.startswith("_") and part != "__init__" for part in alias.name.split(".")):
                        offences.append(f"{module}: import {alias.name}")
    assert not offences, "\n".join(offences)

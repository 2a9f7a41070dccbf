"""The package's shape: no import cycle between its packages, no module importing another's private
names, every store path named by store/layout.py, one reader of the checkpoint registry, one writer
of NaN / inf as text, and a tracker that stays a facade."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
        elif (isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")) or isinstance(node, ast.Try):
            yield from (n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: resolved against the importing package
        base = module.split(".")[: -node.level] if not module.endswith("__init__") else module.split(".")
        return [".".join([*base, node.module or ""]).rstrip(".")]
    return [node.module or ""]


# top-level modules that are one unit with another: the analysis section as a plain dataclass is the
# config's (read without pydantic when there is no config file, through load_config when there is)
SAME_UNIT = {"analysis_settings": "config"}


def unit(module: str) -> str:
    """The package (or top-level module) of unitrack a module belongs to: unitrack.store.writer -> store."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else parts[0]
    return SAME_UNIT.get(name, name)


def runtime_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that can run: module-level and lazy ones inside functions, not ``if TYPE_CHECKING:`` ones."""
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
        for n in ast.walk(block)
    }
    yield from (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in typing_only)


@pytest.mark.parametrize("selection", [module_level_imports, runtime_imports], ids=["module-level", "lazy-too"])
def test_no_import_cycle_between_packages(selection: Callable[[ast.Module], Iterator[ast.Import | ast.ImportFrom]]) -> None:
    """Between unitrack's packages (store, dispatch, distributed...) and top-level modules (tracker, config...);
    a lazy import inside a function counts too: it hides a cycle from start-up, not from the design."""
    graph: dict[str, set[str]] = {}
    for module, tree in modules():
        for node in selection(tree):
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


def module_path(module: str) -> str:
    """``unitrack.store.layout`` -> ``unitrack/store/layout.py`` (a package: its ``__init__.py``)."""
    path = PACKAGE.parent / Path(*module.split("."))
    return (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(PACKAGE.parent).as_posix()


# the files of the store and its run folders: spelled in store/layout.py only
LAYOUT_FILES = (
    "run.json",
    "params.json",
    "summary.json",
    "events.jsonl",
    "environment.json",
    "checkpoints.json",
    "status.json",
    "index.sqlite",
    "audit.jsonl",
    "ui-access.jsonl",
)
LAYOUT_FOLDERS = ("artifacts", "checkpoints", "cursors", "history", "ranks", "rendezvous", "snapshots")
# the same words meaning something else (a remote service's names)
NOT_STORE_PATHS = {
    ("unitrack/backends/mlflow.py", "params.json"),  # the MLflow artifact holding params too long for MLflow
    ("unitrack/backends/base.py", "checkpoints/{}"),  # where a backend mirrors checkpoints among its artifacts
    ("unitrack/server/stack.py", "artifacts"),  # the team server's MLflow artifact folder, not the store's
    ("unitrack/server/tracking.py", "artifacts"),
}


def test_every_path_of_the_store_is_named_in_its_layout() -> None:
    """A store file's name as a literal of its own, or a path into a run folder's subfolder
    (``"artifacts/x"``), appears in store/layout.py only; the rest asks ``StoreLayout`` / ``RunPaths``."""
    offences = []
    for module, tree in modules():
        path = module_path(module)
        if path == "unitrack/store/layout.py":
            continue
        in_fstrings = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            text = None if id(node) in in_fstrings else _literal_text(node)
            if text is None or (path, text) in NOT_STORE_PATHS:
                continue
            if text in LAYOUT_FILES or (text.split("/")[0] in ("runs", *LAYOUT_FOLDERS) and "/" in text):
                offences.append(f"{path}:{node.lineno}: {text!r}")
        joined = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)]  # folder / "ranks"
        for node in joined:
            name = node.right.value if isinstance(node.right, ast.Constant) else None
            if name in LAYOUT_FOLDERS and (path, name) not in NOT_STORE_PATHS:
                offences.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    assert not offences, "spell these through unitrack.store.layout:\n" + "\n".join(offences)


def _literal_text(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with ``{}`` for each placeholder; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def test_the_checkpoint_registry_is_read_in_one_place() -> None:
    """Only checkpoint/registry.py opens the registry file (readers/view.py only asks whether it exists,
    so that a run without checkpoints never imports the checkpoint package)."""
    users = set()
    for module, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "checkpoint_registry":
                users.add(module_path(module))
    assert users == {"unitrack/checkpoint/registry.py", "unitrack/readers/view.py"}


NONFINITE_TEXT = ("nan", "inf", "-inf", "NaN", "Infinity", "-Infinity")
NOT_NUMBERS = {("unitrack/weights/compare.py", "nan"), ("unitrack/weights/compare.py", "inf")}  # names of counts


def test_nonfinite_numbers_are_written_as_text_by_one_module() -> None:
    """unitrack/nonfinite.py alone turns NaN / inf into text: no other module spells the tokens
    (``float("inf")`` aside) or writes ``repr(x)`` / ``str(x)`` of a number it found non-finite."""
    offences = []
    for module, tree in modules():
        path = module_path(module)
        if path == "unitrack/nonfinite.py":
            continue
        made = {id(n.args[0]) for n in ast.walk(tree) if isinstance(n, ast.Call) and _called(n, "float") and n.args}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in NONFINITE_TEXT and id(node) not in made:
                if (path, node.value) not in NOT_NUMBERS:
                    offences.append(f"{path}:{node.lineno}: {node.value!r}")
            elif isinstance(node, (ast.If, ast.IfExp)):
                branch = _nonfinite_branch(node)
                if branch is not None and any(_is_text_of_number(value) for value in branch):
                    offences.append(f"{path}:{node.lineno}: {ast.unparse(node.test)}")
    assert not offences, "use unitrack.nonfinite (encode_number / json_safe):\n" + "\n".join(offences)


def _called(node: ast.Call, *names: str) -> bool:
    func = node.func
    return (isinstance(func, ast.Name) and func.id in names) or (isinstance(func, ast.Attribute) and func.attr in names)


def _nonfinite_branch(node: ast.If | ast.IfExp) -> list[ast.expr] | None:
    """What an ``if`` on a number's finiteness yields (returns) for a non-finite number; None for other ``if``s."""
    test = node.test
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    inner = test.operand if isinstance(test, ast.UnaryOp) and negated else test
    if not (isinstance(inner, ast.Call) and _called(inner, "isfinite", "isnan", "isinf")):
        return None
    finite_when_true = _called(inner, "isfinite") != negated
    if isinstance(node, ast.IfExp):
        return [node.orelse if finite_when_true else node.body]
    body = [] if finite_when_true else node.body
    return [n.value for n in body if isinstance(n, ast.Return) and n.value is not None]


def _is_text_of_number(node: ast.expr) -> bool:
    """``repr(x)`` / ``str(x)`` of a name, alone or as a value of a dict literal."""
    if isinstance(node, ast.Dict):
        return any(v is not None and _is_text_of_number(v) for v in node.values)
    return (
        isinstance(node, ast.Call)
        and _called(node, "repr", "str")
        and bool(node.args)
        and isinstance(node.args[0], (ast.Name, ast.Attribute, ast.Subscript))
    )


def test_the_tracker_is_a_facade() -> None:
    """Its concerns live elsewhere (store/artifacts, capture/jobs, lifecycle, commit_env, run_record,
    metric_values, distributed/roles); what stays is the public API and thin delegation."""
    lines = (PACKAGE / "tracker.py").read_text().count("\n")
    assert lines <= 450, f"tracker.py has {lines} lines"

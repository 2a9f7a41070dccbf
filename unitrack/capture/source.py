"""The source of a model's own classes and of the functions they use, found through the AST.

A lesson of local model registries: a diff of the whole repository buries the change that matters. Here we keep
the user-defined ``nn.Module`` classes of the model (and their user-defined bases) and, followed
transitively, every module-level function or class their code refers to: called directly
(``helper(x)``), through a module (``utils.helper(x)``), or passed around (``map(act, xs)``).
Library code (site-packages, the standard library, torch) is left out.
"""

from __future__ import annotations

import ast
import inspect
import sys
import sysconfig
import textwrap
import types
from pathlib import Path
from typing import Any

MAX_OBJECTS = 200
_LIBRARY_ROOTS = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib")}
    if p
)
_OWN_ROOT = str(Path(__file__).resolve().parents[1])


def is_user_code(obj: Any) -> bool:
    """True for functions and classes defined in the user's files, not in libraries or unitrack."""
    try:
        filename = inspect.getsourcefile(obj)
    except TypeError:
        return False
    if not filename:
        return False
    path = str(Path(filename).resolve())
    if "site-packages" in path or "dist-packages" in path or path.startswith(_OWN_ROOT):
        return False
    return not path.startswith(_LIBRARY_ROOTS)


def qualified_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _source(obj: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None


def _referenced_objects(tree: ast.AST, namespace: dict[str, Any]) -> list[Any]:
    """Module-level objects that the code refers to by name or through a module attribute."""
    found: list[Any] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            target = namespace.get(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = namespace.get(node.value.id)
            target = getattr(owner, node.attr, None) if isinstance(owner, types.ModuleType) else None
        else:
            continue
        if inspect.isfunction(target) or inspect.isclass(target):
            found.append(target)
    return found


def _namespace_of(obj: Any) -> dict[str, Any]:
    if inspect.isfunction(obj):
        return obj.__globals__
    module = sys.modules.get(obj.__module__)
    return vars(module) if module else {}


def model_sources(model: Any) -> dict[str, dict[str, str]]:
    """``{"classes": {qualname: source}, "functions": {qualname: source}}`` for a model."""
    import torch.nn as nn

    roots: list[Any] = []
    for module in model.modules():
        for cls in type(module).__mro__:
            if cls is nn.Module or not issubclass(cls, nn.Module):
                break
            if is_user_code(cls) and cls not in roots:
                roots.append(cls)

    classes: dict[str, str] = {}
    functions: dict[str, str] = {}
    seen: set[int] = set()
    pending = list(roots)
    while pending and len(seen) < MAX_OBJECTS:
        obj = pending.pop(0)
        if id(obj) in seen or not is_user_code(obj):
            continue
        seen.add(id(obj))
        source = _source(obj)
        if source is None:
            continue
        (classes if inspect.isclass(obj) else functions)[qualified_name(obj)] = source
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        pending.extend(_referenced_objects(tree, _namespace_of(obj)))
    return {"classes": classes, "functions": functions}

"""Differences between two runs' settings and source code, with numbers compared with a tolerance."""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_DEEPDIFF_KEY = re.compile(r"\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def is_ignored(key: str, patterns: Sequence[str]) -> bool:
    lowered = key.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def _key_of(path: str) -> str:
    """The flat key a deepdiff path starts with: ``root['betas'][0]`` is ``betas``."""
    match = _DEEPDIFF_KEY.search(path)
    return (match.group(1) or match.group(2)) if match else path


def _numbers_close(a: Any, b: Any, rel: float, abs_: float) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, numeric) or not isinstance(b, numeric):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def ratio(a: Any, b: Any) -> float | None:
    """``b / a`` for two non-zero numbers (how many times a value grew), else None."""
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return None
    if a == 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return b / a


def settings_diff(
    a: Mapping[str, Any], b: Mapping[str, Any], rel_tolerance: float, abs_tolerance: float, ignore: Sequence[str] = ()
) -> dict[str, Any]:
    """What changed, was added or removed between two settings mappings (deepdiff on the flattened keys).

    Numbers within the tolerance are equal; keys matching an ``ignore`` pattern (output paths,
    host names) are listed under ``ignored`` instead of changing anything.
    """
    from deepdiff import DeepDiff

    flat_a, flat_b = flatten(a), flatten(b)
    ignored = sorted(k for k in set(flat_a) | set(flat_b) if is_ignored(k, ignore))
    left = {k: v for k, v in flat_a.items() if k not in ignored}
    right = {k: v for k, v in flat_b.items() if k not in ignored}
    diff = DeepDiff(left, right, ignore_numeric_type_changes=True, math_epsilon=abs_tolerance or None, view="tree")
    changed: dict[str, dict[str, Any]] = {}
    for kind in ("values_changed", "type_changes", "iterable_item_added", "iterable_item_removed"):
        for item in diff.get(kind, []):
            key = _key_of(item.path())
            old, new = left.get(key), right.get(key)
            if _numbers_close(old, new, rel_tolerance, abs_tolerance):
                continue
            changed[key] = {"key": key, "a": old, "b": new, "ratio": ratio(old, new)}
    added = [{"key": k, "value": right[k]} for k in sorted(set(right) - set(left))]
    removed = [{"key": k, "value": left[k]} for k in sorted(set(left) - set(right))]
    return {
        "changed": [changed[k] for k in sorted(changed)],
        "added": added,
        "removed": removed,
        "ignored": ignored,
    }


def text_diff(a: str | None, b: str | None, name: str) -> dict[str, Any]:
    """A unified diff of two texts and the lines each side has that the other lacks."""
    left = (a or "").splitlines()
    right = (b or "").splitlines()
    lines = list(difflib.unified_diff(left, right, f"a/{name}", f"b/{name}", lineterm="", n=2))
    body = [line for line in lines if not line.startswith(("---", "+++", "@@"))]
    return {
        "name": name,
        "status": "added" if a is None else "removed" if b is None else ("changed" if lines else "same"),
        "diff": lines,
        "removed_lines": [line[1:] for line in body if line.startswith("-")],
        "added_lines": [line[1:] for line in body if line.startswith("+")],
    }


def sources_diff(a: Mapping[str, str], b: Mapping[str, str]) -> list[dict[str, Any]]:
    """Per class or function present in either run: its diff, unchanged ones left out."""
    found = []
    for name in sorted(set(a) | set(b)):
        entry = text_diff(a.get(name), b.get(name), name)
        if entry["status"] != "same":
            found.append(entry)
    return found

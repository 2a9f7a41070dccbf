"""Differences between two runs' settings and source code, with numbers compared with a tolerance."""

from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Mapping, Sequence
from typing import Any


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
    """Whether ``key`` matches one of the shell-style ``patterns`` (case-insensitive)."""
    lowered = key.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


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


def _nested_diff(a: Any, b: Any, abs_tolerance: float) -> list[str] | None:
    """What changed inside two lists or mappings, in deepdiff's words; None when nothing did."""
    from deepdiff import DeepDiff  # imported only when a nested value differs: it takes a second to load

    diff = DeepDiff(a, b, ignore_numeric_type_changes=True, math_epsilon=abs_tolerance or None)
    return diff.pretty().splitlines() if diff else None


def settings_diff(a: Mapping[str, Any], b: Mapping[str, Any], rel_tolerance: float, abs_tolerance: float) -> dict[str, Any]:
    """What changed, was added or removed between two settings mappings (compared on flattened keys).

    Numbers within the tolerance are equal; a list or mapping that differs carries deepdiff's
    description of what changed inside it (``detail``).
    """
    left, right = flatten(a), flatten(b)
    changed = []
    for key in sorted(set(left) & set(right)):
        old, new = left[key], right[key]
        if old == new or _numbers_close(old, new, rel_tolerance, abs_tolerance):
            continue
        entry: dict[str, Any] = {"key": key, "a": old, "b": new, "ratio": ratio(old, new)}
        if isinstance(old, (list, tuple, Mapping)) and isinstance(new, (list, tuple, Mapping)):
            detail = _nested_diff(old, new, abs_tolerance)
            if detail is None:
                continue
            entry["detail"] = detail
        changed.append(entry)
    return {
        "changed": changed,
        "added": [{"key": k, "value": right[k]} for k in sorted(set(right) - set(left))],
        "removed": [{"key": k, "value": left[k]} for k in sorted(set(left) - set(right))],
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

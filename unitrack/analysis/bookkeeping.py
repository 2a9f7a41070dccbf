"""Bookkeeping params: settings that change where and how a run is recorded, not what it learns.

An output path, a run name, a logging interval or a loader's worker count differ between two
runs all the time and never explain why their results differ; ranked beside the learning rate
they push the real cause down (a seed-only pair read as "out_dir changed"). They are recognised
by name (``analysis.ignore_params``, shell-style patterns on the full key and on its last part)
and by the shape of their value (a path, a URL, a timestamp), unless their last part matches
``analysis.keep_params`` (data, model, tokenizer, initial weights: a path there matters).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_PATH = re.compile(r"^(~|\.{1,2})?/?([\w.+@-]+[/\\])+[\w.+@-]*$")
_FILE = re.compile(r"^[\w.+@/\\-]+\.(pt|pth|ckpt|bin|safetensors|json|ya?ml|log|txt|csv|npz|h5|onnx)$", re.IGNORECASE)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}([ T_]\d{2}[:.-]?\d{2}([:.-]?\d{2})?.*)?$")


def _last_part(key: str) -> str:
    return key.replace(".", "/").split("/")[-1]


def value_shape(value: Any) -> str | None:
    """``"a path"``, ``"a URL"`` or ``"a timestamp"`` when a value looks like one, else None."""
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        return None
    if _URL.match(value):
        return "a URL"
    if _TIMESTAMP.match(value):
        return "a timestamp"
    if _FILE.match(value) or (_PATH.match(value) and ("/" in value or "\\" in value)):
        return "a path"
    return None


@lru_cache(maxsize=64)
def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled regex for many shell-style patterns (a store's worth of keys is matched often)."""
    return re.compile("|".join(f"({fnmatch.translate(p.lower())})" for p in patterns) or "(?!)")


def bookkeeping_reason(key: str, values: Sequence[Any], ignore: Sequence[str], keep: Sequence[str]) -> str | None:
    """Why ``key`` (with the values the runs gave it) is bookkeeping, or None when it may matter."""
    last = _last_part(key).lower()
    if _matcher(tuple(keep)).match(last):
        return None
    for part in dict.fromkeys((key.lower(), last)):
        found = _matcher(tuple(ignore)).match(part)
        if found and found.lastindex:
            return f"name matches {ignore[found.lastindex - 1]!r}"
    shapes = {value_shape(v) for v in values if v is not None}
    if len(shapes) == 1 and None not in shapes:
        return f"value is {shapes.pop()}"
    return None


def split_bookkeeping(diff: dict[str, Any], ignore: Sequence[str], keep: Sequence[str]) -> dict[str, Any]:
    """``diff`` (from ``settings_diff``) with its bookkeeping entries moved to ``diff["bookkeeping"]``.

    Each moved entry keeps its values and says why (``reason``) and how it differed (``change``:
    changed, added or removed), so that it can be shown, and told to an LLM, as not a cause.
    """
    bookkeeping: list[dict[str, Any]] = []
    kept: dict[str, list[dict[str, Any]]] = {}
    for part, values_of in (("changed", ("a", "b")), ("added", ("value",)), ("removed", ("value",))):
        kept[part] = []
        for entry in diff[part]:
            reason = bookkeeping_reason(entry["key"], [entry[v] for v in values_of], ignore, keep)
            if reason is None:
                kept[part].append(entry)
            else:
                bookkeeping.append({**entry, "change": part, "reason": reason})
    return {**diff, **kept, "bookkeeping": sorted(bookkeeping, key=lambda e: e["key"])}

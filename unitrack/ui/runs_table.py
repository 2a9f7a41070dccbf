"""The runs page's data: every run as ``ls --json`` shows it, sorted, grouped and served in pages.

The list is read once through the read API and kept for a moment (``TTL_S``), so that scrolling
through 10,000 runs, re-sorting them or typing a filter re-reads nothing: a page of the table is
a slice of a list already in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

TTL_S = 2.0
GROUP_FIELDS = {"experiment": "experiment", "git": "git_commit", "status": "status"}
ATTRIBUTE_SORTS = ("run_id", "name", "experiment", "status", "start_time", "end_time", "duration", "message", "git_commit")

Lister = Callable[[str | None], list[dict[str, Any]]]


def group_key(run: dict[str, Any], by: str) -> str:
    """The group a run falls in: ``experiment``, ``git``, ``status`` or ``tag:NAME``."""
    if by.startswith("tag:"):
        value = (run.get("tags") or {}).get(by[4:])
        return "(none)" if value is None else str(value) or "(set)"
    if by not in GROUP_FIELDS:
        raise ValueError(f"group={by!r}: choose experiment, git, status or tag:NAME")
    return str(run.get(GROUP_FIELDS[by]) or "(none)")


def _sort_value(run: dict[str, Any], key: str) -> Any:
    section, _, name = key.partition(".")
    if section in ("params", "metrics", "tags") and name:
        return (run.get(section) or {}).get(name)
    if key not in ATTRIBUTE_SORTS:
        raise ValueError(f"sort={key!r}: choose one of {', '.join(ATTRIBUTE_SORTS)} or params.X / metrics.X / tags.X")
    return run.get(key)


def sort_runs(runs: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Runs ordered by ``key``; runs without it last either way; numbers before text."""

    def rank(run: dict[str, Any]) -> tuple[int, Any]:
        value = _sort_value(run, key)
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, (int, float)) and value == value:
            return (0, (-value if descending else value, ""))
        if value is None or value != value:
            return (2, (0, ""))
        text = str(value).lower()
        return (1, (0, text))

    ordered = sorted(runs, key=rank)
    if descending:  # text descending: reverse that block alone (numbers were negated above)
        texts = [r for r in ordered if rank(r)[0] == 1]
        texts.reverse()
        ordered = [r for r in ordered if rank(r)[0] == 0] + texts + [r for r in ordered if rank(r)[0] == 2]
    return ordered


class RunsTable:
    """The store's runs (``lister(filter)`` gives them, newest first), cached for ``TTL_S``."""

    def __init__(self, lister: Lister) -> None:
        self._lister = lister
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def runs(self, filter_text: str | None) -> list[dict[str, Any]]:
        key = (filter_text or "").strip()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < TTL_S:
                return hit[1]
        found = self._lister(key or None)
        with self._lock:
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = (now, found)
        return found

    def page(
        self,
        filter_text: str | None = None,
        sort: str | None = None,
        descending: bool = True,
        group: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the (filtered, sorted, grouped) runs, and how many there are in all."""
        runs = self.runs(filter_text)
        if sort:
            runs = sort_runs(runs, sort, descending)
        if group:
            order: dict[str, int] = {}
            for run in runs:
                order.setdefault(group_key(run, group), len(order))
            runs = sorted(runs, key=lambda r: order[group_key(r, group)])  # stable: the sort holds within a group
        end = None if limit is None else offset + limit
        shown = runs[offset:end]
        if group:
            shown = [{**r, "group": group_key(r, group)} for r in shown]
        return shown, len(runs)

    def groups(self, filter_text: str | None, by: str) -> list[dict[str, Any]]:
        """``[{"key", "count"}]``, the group of the newest run first."""
        counts: dict[str, int] = {}
        for run in self.runs(filter_text):
            key = group_key(run, by)
            counts[key] = counts.get(key, 0) + 1
        return [{"key": key, "count": count} for key, count in counts.items()]

    def columns(self, filter_text: str | None) -> dict[str, list[str]]:
        """Every param and metric key among the runs, and the ones worth showing first."""
        from unitrack.cli.runs import headline_metrics

        runs = self.runs(filter_text)
        params: dict[str, set[str]] = {}
        metrics: set[str] = set()
        for run in runs:
            for key, value in (run.get("params") or {}).items():
                seen = params.setdefault(key, set())
                if len(seen) < 2:
                    seen.add(repr(value))
            metrics.update(run.get("metrics") or {})
        varying = [key for key in sorted(params) if len(params[key]) > 1]
        return {
            "params": sorted(params),
            "metrics": sorted(metrics),
            "default_params": varying[:4],
            "default_metrics": headline_metrics(dict.fromkeys(metrics)),
        }

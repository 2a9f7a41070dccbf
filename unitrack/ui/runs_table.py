"""The runs page's data: every run as ``ls --json`` shows it, filtered, sorted, grouped, in pages.

Every run of the store is read through the read API (``unitrack.runs``) and kept in memory; a
request filters (the ``ls --filter`` grammar, the same compiled predicate ``unitrack.runs``
applies), sorts and slices that list, and each ordering is kept until the list changes. So
scrolling through 10,000 runs, re-sorting them or typing a filter re-reads nothing. The list is
read again in the background once it is ``TTL_S`` old: requests meanwhile get the one in hand.
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
Key = tuple[str, str, bool, str]


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
    """The store's runs (``lister(None)`` gives them all, newest first), as the table asks for them."""

    def __init__(self, lister: Lister) -> None:
        self._lister = lister
        self._lock = threading.Lock()
        self._loaded = 0.0
        self._all: list[dict[str, Any]] | None = None
        self._refreshing = False
        self._orders: dict[Key, list[dict[str, Any]]] = {}

    def _current(self) -> list[dict[str, Any]]:
        with self._lock:
            found, stale = self._all, time.monotonic() - self._loaded > TTL_S
            if found is not None and stale and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh, name="unitrack-ui-runs", daemon=True).start()
        if found is None:
            self._refresh()
            with self._lock:
                found = self._all
        assert found is not None
        return found

    def _refresh(self) -> None:
        try:
            found = self._lister(None)
            with self._lock:
                self._all, self._loaded, self._orders = found, time.monotonic(), {}
        finally:
            with self._lock:
                self._refreshing = False

    def runs(self, filter_text: str | None) -> list[dict[str, Any]]:
        """The runs matching ``filter_text``, newest first."""
        return self._ordered((filter_text or "").strip(), "", True, "")

    def _ordered(self, filter_text: str, sort: str, descending: bool, group: str) -> list[dict[str, Any]]:
        every = self._current()
        key = (filter_text, sort, descending, group)
        with self._lock:
            hit = self._orders.get(key) if self._all is every else None
        if hit is not None:
            return hit
        runs = every
        if filter_text:
            from unitrack.store.query import compile_filter

            predicate = compile_filter(filter_text)
            runs = [r for r in runs if predicate({"params": r["params"], "metrics": r["metrics"], "tags": r["tags"], "attributes": r})]
        if sort:
            runs = sort_runs(runs, sort, descending)
        if group:
            order: dict[str, int] = {}
            for run in runs:
                order.setdefault(group_key(run, group), len(order))
            runs = sorted(runs, key=lambda r: order[group_key(r, group)])  # stable: the sort holds within a group
        with self._lock:
            if self._all is every:
                if len(self._orders) > 32:
                    self._orders.clear()
                self._orders[key] = runs
        return runs

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
        runs = self._ordered((filter_text or "").strip(), sort or "", descending, group or "")
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
        from unitrack.goals import headline_metrics

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

"""Where the dashboard's data comes from: the read API, and nothing else.

Every run reference the API receives is checked here first: a run of the store (id, prefix,
``latest``, ``latest~N``) or a run of a configured MLflow server. A ``wandb:`` or ``tb:``
reference names a folder anywhere on disk, so the dashboard refuses it: a web page must not
become a way to read arbitrary folders.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.errors import RunNotFoundError
from unitrack.names import is_run_id
from unitrack.store.layout import RunPaths

if TYPE_CHECKING:
    import numpy as np

    from unitrack.store.runs import RunStore

_LATEST = re.compile(r"^latest(~\d{1,6})?$")
_MLFLOW_ID = re.compile(r"^[0-9a-f]{32}$")
_VIEW_CACHE = 32


class RefusedRef(RunNotFoundError):
    """A run reference the dashboard does not serve (a folder outside the store, an unknown server)."""


def mlflow_uri() -> str | None:
    """The MLflow server the user configured (``MLFLOW_TRACKING_URI``), if any."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def check_ref(ref: str) -> str:
    """``ref`` when the dashboard may read it; :class:`RefusedRef` otherwise."""
    ref = ref.strip()
    if _LATEST.match(ref) or (is_run_id(ref) and len(ref) >= 4):
        return ref
    if ref.startswith("mlflow:") and mlflow_uri() and _MLFLOW_ID.match(ref[len("mlflow:") :]):
        return ref
    raise RefusedRef(f"no run {ref!r}: the dashboard serves the runs of its store and of the configured MLflow server")


class RunSource:
    """The store's runs through ``unitrack.runs`` / ``unitrack.open_run``; the last few opened runs
    are kept while their journal is unchanged (a run page asks for each of its curves)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._views: dict[str, tuple[tuple[int, ...], Any]] = {}

    def list_runs(self, filter_text: str | None) -> list[dict[str, Any]]:
        """Every run matching ``filter_text``, newest first, each shaped as in ``unitrack ls --json``."""
        from unitrack.reading import listings

        return listings(filter_text, store=self.store)

    def details(self, ref: str) -> dict[str, Any]:
        """One run as ``unitrack show --json`` prints it."""
        return dict(self.view(ref).to_dict())

    def local_root(self, ref: str) -> Path | None:
        """The run's folder in the store (None for a backend's run)."""
        ref = check_ref(ref)
        if ref.startswith("mlflow:"):
            return None
        return self.store.resolve(ref).root

    def view(self, ref: str) -> Any:
        """The run's ``RunView``, opened again only when its journal or ``run.json`` changed."""
        from unitrack.reading import open_run

        root = self.local_root(ref)
        if root is None:
            return open_run(check_ref(ref), self.store)
        stamp = _stamp(root)
        with self._lock:
            hit = self._views.get(root.name)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        view = open_run(root.name, self.store)
        with self._lock:
            if len(self._views) >= _VIEW_CACHE:
                self._views.pop(next(iter(self._views)))
            self._views[root.name] = (stamp, view)
        return view

    def series(self, ref: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every point of metric ``key``: steps, values and wall times, in logged order."""
        view = self.view(ref)
        if key not in view.metric_keys:
            raise KeyError(f"run {view.run_id} has no metric {key!r}")
        steps, values, times = view.history(key, with_time=True)
        return steps, values, times

    def system(self, ref: str) -> dict[str, dict[str, list[Any]]]:
        """The system monitor's series: ``{key: {"time": [...], "value": [...]}}``."""
        series: dict[str, dict[str, list[Any]]] = {}
        for sample in self.view(ref).system_history:
            suffix = f"/rank{sample['rank']}" if sample.get("rank") is not None else ""
            for key, value in sample["values"].items():
                entry = series.setdefault(key + suffix, {"time": [], "value": []})
                entry["time"].append(sample["time"])
                entry["value"].append(value if value == value else None)
        return series


def _stamp(root: Path) -> tuple[int, ...]:
    """What changes when a run changes: its journal's size and time, and ``run.json``'s time."""
    stamp: list[int] = []
    paths = RunPaths(root)
    for path in (paths.events, paths.run_json):
        try:
            stat = path.stat()
            stamp += [stat.st_size, stat.st_mtime_ns]
        except FileNotFoundError:
            stamp += [0, 0]
    return tuple(stamp)

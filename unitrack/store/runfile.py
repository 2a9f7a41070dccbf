"""``run.json``: the run's identity and lifecycle, rewritten atomically on every change."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from unitrack.store.fsio import atomic_write_json


class RunFile:
    """The in-memory copy of ``run.json``; several threads update it, one at a time."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self._data = dict(data)
        self._lock = threading.Lock()
        atomic_write_json(path, self._data)

    def update(self, **fields: Any) -> None:
        with self._lock:
            self._data.update(fields)
            atomic_write_json(self.path, self._data)

    def merge(self, key: str, values: dict[str, Any]) -> None:
        """Merge ``values`` into the mapping stored under ``key``."""
        with self._lock:
            self._data[key] = {**(self._data.get(key) or {}), **values}
            atomic_write_json(self.path, self._data)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._data)

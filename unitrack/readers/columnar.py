"""A local run's curves, system samples and artifacts from its columnar history (``store/columns.py``).

The committed part is memory-mapped; the journal past the history's offset (a running run's
last second, a crashed run's tail) is parsed here. When nobody is committing, reading a run
whose history is missing or stale first brings it up to date, so the next read parses nothing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from unitrack.readers.view import Point
from unitrack.store import columns
from unitrack.store.layout import RunPaths

if TYPE_CHECKING:  # numpy is imported by the first curve read: ``show`` reads none
    import numpy as np

    Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


class ColumnarSeries:
    """The :class:`~unitrack.readers.view.Series` of a local run, as of the moment it was made."""

    def __init__(self, paths: RunPaths) -> None:
        self._dir = paths.root
        index = columns.catch_up(paths.root, paths.events)
        if index is None:  # a writer holds the lock (or the folder is read-only): read what it committed
            index = columns.read_index(paths.root, paths.events)
            if index is not None and not columns.verify_columns(paths.root, index):
                index = None
        self._index = index or columns.empty_index()
        self._tail, _ = columns.parse_journal(paths.events, int(self._index["offset"]))
        self._rewinds = [*self._index["rewinds"], *self._tail.rewinds]
        self._cache: dict[str, Arrays] = {}
        committed = sorted(self._index["keys"], key=lambda k: int(self._index["keys"][k]["file"]))
        ordered = committed + [k for k in self._tail.columns if k not in self._index["keys"]]
        self._keys = [key for key in ordered if not self._rewinds or len(self.arrays(key)[0])]

    # --- Series -----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._keys)

    def arrays(self, key: str) -> Arrays:
        import numpy as np

        cached = self._cache.get(key)
        if cached is not None:
            return cached
        entry = self._index["keys"].get(key)
        column = self._tail.columns.get(key)
        if entry is None and column is None:
            raise KeyError(key)
        parts = [self._mapped(entry)] if entry is not None and int(entry["count"]) else []
        if column is not None:
            parts.append(
                (
                    np.array(column.steps, dtype=np.int64),
                    np.array(column.values, dtype=np.float64),
                    np.array(column.times, dtype=np.float64),
                )
            )
        if not parts:
            arrays: Arrays = (np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64))
        elif len(parts) == 1:
            arrays = parts[0]
        else:
            arrays = (
                np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]),
            )
        if self._rewinds:
            arrays = _drop_superseded(arrays, self._rewinds)
        self._cache[key] = arrays
        return arrays

    def int_valued(self, key: str) -> bool:
        """True when every value of ``key`` was logged as an int (``export`` prints them so)."""
        entry = self._index["keys"].get(key)
        column = self._tail.columns.get(key)
        return (entry is None or bool(entry.get("ints"))) and (column is None or column.ints)

    def points(self) -> dict[str, list[Point]]:
        history: dict[str, list[Point]] = {}
        for key in self._keys:
            steps, values, times = self.arrays(key)
            numbers: list[Any] = values.tolist()
            if self.int_valued(key):
                numbers = [int(v) for v in numbers]
            history[key] = [
                {"step": s, "time": t, "value": v} for s, t, v in zip(steps.tolist(), times.tolist(), numbers, strict=True)
            ]
        return history

    # --- the rest the history holds ---------------------------------------------------------------

    def artifacts(self) -> list[Point]:
        """The latest entry per artifact name, in the order the names first appeared."""
        found = dict(self._index["artifacts"])
        found.update(self._tail.artifacts)
        return list(found.values())

    def system_history(self) -> list[Point]:
        data = b""
        size = int(self._index.get("system_bytes", 0))
        if size:
            with open(columns.history_dir(self._dir) / "system.jsonl", "rb") as handle:
                data = handle.read(size)
        lines = data.splitlines() + [line.rstrip(b"\n") for line in self._tail.system]
        samples = []
        for line in lines:
            sample = json.loads(line)
            sample["values"] = {k: _decode(v) for k, v in sample["values"].items()}
            samples.append(sample)
        return samples

    def _mapped(self, entry: dict[str, Any]) -> Arrays:
        import numpy as np

        folder = columns.history_dir(self._dir)
        count = int(entry["count"])
        name = entry["file"]
        return (
            np.memmap(folder / f"{name}.step", dtype="<i8", mode="r", shape=(count,)),
            np.memmap(folder / f"{name}.value", dtype="<f8", mode="r", shape=(count,)),
            np.memmap(folder / f"{name}.time", dtype="<f8", mode="r", shape=(count,)),
        )


def _decode(value: Any) -> Any:
    from unitrack.nonfinite import decode_number

    return decode_number(value)


def _drop_superseded(arrays: Arrays, rewinds: list[dict[str, Any]]) -> Arrays:
    """Without the points a rewind superseded: logged before it, at a step after its step."""
    import numpy as np

    steps, values, times = arrays
    superseded = np.zeros(len(steps), dtype=bool)
    for rewind in rewinds:
        superseded |= (times < float(rewind["time"])) & (steps > int(rewind["step"]))
    if not superseded.any():
        return arrays
    keep = ~superseded
    return steps[keep], values[keep], times[keep]


"""The run's journal writer, and the readable files derived from it: the local store's half of the hand-off.

It is always on and written first (the dispatcher's writer thread feeds it through the
:class:`~unitrack.store.journal.JournalSink` protocol; it is not a remote backend). ``events.jsonl`` is the source of truth; ``params.json``
and ``summary.json`` (last / min / max of every series) are kept beside it for people and
``git diff``, and the store's SQLite index is refreshed from them for fast listing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from unitrack.events import (
    ERROR,
    REWIND,
    Event,
    MetricEvent,
    ParamsEvent,
    RecordEvent,
    SystemEvent,
    TagsEvent,
)
from unitrack.nonfinite import decode_number, encode_number
from unitrack.store.columns import HistoryWriter
from unitrack.store.fsio import atomic_write_json, read_json
from unitrack.store.history import metric_history
from unitrack.store.journal import JournalWriter
from unitrack.store.layout import RunPaths
from unitrack.store.runfile import RunFile
from unitrack.store.runs import HEARTBEAT_INTERVAL_S, RunStore, make_index_row

INDEX_INTERVAL_S = 10.0

Stats = dict[str, dict[str, Any]]


def observe(stats: Stats, key: str, value: float | int, step: int | None, when: float) -> None:
    """Fold one value into the running summary of its series."""
    entry = stats.get(key)
    if entry is None:
        entry = stats[key] = {"count": 0, "min": None, "max": None, "sum": 0.0}
    entry["last"] = value
    entry["time"] = when
    entry["count"] += 1
    if step is not None:
        entry["step"] = step
    if value == value:  # NaN is recorded as last but never as min or max
        if entry["min"] is None or value < entry["min"]:
            entry["min"] = value
        if entry["max"] is None or value > entry["max"]:
            entry["max"] = value
        entry["sum"] += value


def fold_metrics(stats: Stats, events: list[MetricEvent]) -> None:
    """Fold a batch of metric events into the summaries: one pass, min and max computed in C."""
    series: dict[str, list[float | int]] = {}
    last: dict[str, MetricEvent] = {}
    for event in events:
        for key, value in event.values.items():
            values = series.get(key)
            if values is None:
                values = series[key] = []
            values.append(value)
            last[key] = event
    for key, values in series.items():
        entry = stats.get(key)
        if entry is None:
            entry = stats[key] = {"count": 0, "min": None, "max": None, "sum": 0.0}
        event = last[key]
        entry["last"] = event.values[key]
        entry["step"] = event.step
        entry["time"] = event.time
        entry["count"] += len(values)
        finite = [v for v in values if v == v]  # NaN is recorded as last but never as min or max
        if finite:
            low, high = min(finite), max(finite)
            entry["min"] = low if entry["min"] is None else min(entry["min"], low)
            entry["max"] = high if entry["max"] is None else max(entry["max"], high)
            entry["sum"] += sum(finite)


def encode_stats(stats: Stats) -> Stats:
    encoded: Stats = {}
    for key, entry in stats.items():
        out = {k: v for k, v in entry.items() if k != "sum"}
        finite = entry["count"] and entry["min"] is not None
        out["mean"] = entry["sum"] / entry["count"] if finite else None
        for name in ("last", "min", "max", "mean"):
            if out.get(name) is not None:
                out[name] = encode_number(out[name])
        encoded[key] = out
    return encoded


def decode_stats(stats: Stats) -> Stats:
    decoded: Stats = {}
    for key, entry in stats.items():
        out = dict(entry)
        for name in ("last", "min", "max"):
            if out.get(name) is not None:
                out[name] = decode_number(out[name])
        mean = out.pop("mean", None)
        out["sum"] = decode_number(mean) * out.get("count", 0) if mean is not None else 0.0
        decoded[key] = out
    return decoded


def _history_events(paths: RunPaths) -> list[MetricEvent]:
    """The run's metric history (rewinds applied) as events, one per point, for re-folding."""
    points = [(p["time"], p["step"], key, p["value"]) for key, series in metric_history(paths).items() for p in series]
    return [MetricEvent(0, when, step, {key: value}) for when, step, key, value in sorted(points, key=lambda p: p[:2])]


class RunWriter:
    """Writes the journal and the run folder's derived files (a :class:`JournalSink`); fed by the dispatcher."""

    def __init__(self, store: RunStore, paths: RunPaths, run_file: RunFile) -> None:
        self.store = store
        self.paths = paths
        self.run_file = run_file
        self._journal: JournalWriter | None = None
        self._history = HistoryWriter(paths.root, paths.events)
        summary = read_json(paths.summary_json, {}) or {}
        self._metrics: Stats = decode_stats(summary.get("metrics", {}))
        self._system: Stats = decode_stats(summary.get("system", {}))
        self._params: dict[str, Any] = read_json(paths.params_json, {}) or {}
        self._unfolded: list[MetricEvent] = []
        self._dirty = False
        self._last_beat = 0.0
        self._last_index = 0.0
        self.dropped_events = int(summary.get("dropped_events", 0))

    @property
    def journal_offset(self) -> int:
        return self._journal.offset if self._journal else 0

    def open(self) -> None:
        self._journal = JournalWriter(self.paths.events)
        self._history.open(self._journal.offset)
        self._write_views()
        self._beat(force=True)
        self._refresh_index(force=True)

    def write(self, events: Sequence[Event]) -> None:
        assert self._journal is not None, "open() first"
        lines = [event.to_json() for event in events]
        self._journal.append(("\n".join(lines) + "\n").encode("utf-8"))
        self._history.add(events, self._journal.offset)
        rewound = False
        for event in events:
            if type(event) is MetricEvent:
                self._unfolded.append(event)
            elif type(event) is SystemEvent:
                prefix = "" if event.rank is None else f"rank{event.rank}/"
                for key, value in event.values.items():
                    observe(self._system, prefix + key, value, None, event.time)
            elif type(event) is ParamsEvent:
                self._params.update(event.values)
            elif type(event) is TagsEvent:
                self.run_file.merge("tags", event.values)
            elif event.kind == REWIND:
                rewound = True
            elif isinstance(event, RecordEvent) and event.kind_name == ERROR:
                self.run_file.update(error=event.data)  # why the run failed, for show, ls and explain
        if rewound:  # a resumed run: the superseded points leave the summary
            self._unfolded = []
            self._metrics = {}
            fold_metrics(self._metrics, _history_events(self.paths))
        self._dirty = True

    def add_dropped(self, count: int) -> None:
        """Count events the queue had to drop (kept in ``summary.json``)."""
        self.dropped_events += count
        self._dirty = True

    def flush(self) -> None:
        """Make the journal durable and the derived files current."""
        if self._journal is not None:
            self._journal.sync()
            self._history.commit()
        if self._dirty:
            self._write_views()
            self._dirty = False
        self._beat()
        self._refresh_index()

    def close(self, status: str, **run_fields: Any) -> None:
        """Finish the run's files; ``run_fields`` are extra facts for ``run.json`` (backend states...)."""
        self.flush()
        end = time.time()
        start = self.run_file.snapshot().get("start_time") or end
        self.run_file.update(**run_fields, status=status, end_time=end, duration=end - start)
        self._refresh_index(force=True)
        self._history.close()
        if self._journal is not None:
            self._journal.close()

    def summary(self) -> dict[str, Any]:
        if self._unfolded:
            fold_metrics(self._metrics, self._unfolded)
            self._unfolded = []
        return {
            "metrics": encode_stats(self._metrics),
            "system": encode_stats(self._system),
            "dropped_events": self.dropped_events,
        }

    def _write_views(self) -> None:
        atomic_write_json(self.paths.params_json, self._params, durable=False)
        atomic_write_json(self.paths.summary_json, self.summary(), durable=False)

    def _beat(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_beat >= HEARTBEAT_INTERVAL_S:
            self.paths.heartbeat.touch()
            self._last_beat = now

    def _refresh_index(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_index < INDEX_INTERVAL_S:
            return
        run = self.run_file.snapshot()
        summary = self.summary()
        self.store.index.upsert([make_index_row(run, run["status"], self._params, summary["metrics"])])
        self._last_index = now

"""Reading a run's journal back: every metric point, system samples, artifacts, delivery state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from unitrack.events import ArtifactEvent, MetricEvent, SystemEvent, event_from_record
from unitrack.store.fsio import read_json
from unitrack.store.journal import iter_journal, last_record
from unitrack.store.layout import RunPaths

Point = dict[str, Any]


@dataclass
class JournalViews:
    """What a reader of a finished run wants from its journal, gathered in one pass over it."""

    metrics: dict[str, list[Point]] = field(default_factory=dict)  # {key: [{step, time, value}]}, live points only
    system: list[Point] = field(default_factory=list)  # [{time, rank, values}]
    artifacts: list[Point] = field(default_factory=list)  # latest entry per name: {name, path, size, sha256}


def read_views(paths: RunPaths) -> JournalViews:
    """Metric history, system samples and artifacts of a run from one read of its journal.

    A ``rewind`` event (a resumed run) supersedes the points logged before it at later steps.
    """
    views = JournalViews()
    rewinds: list[Point] = []
    found: dict[str, Point] = {}
    for record in iter_journal(paths.events):
        kind = record.get("kind")
        if kind == "metric":
            event = MetricEvent.from_record(record)
            for key, value in event.values.items():
                views.metrics.setdefault(key, []).append({"step": event.step, "time": event.time, "value": value})
        elif kind == "system":
            sample = SystemEvent.from_record(record)
            views.system.append({"time": sample.time, "rank": sample.rank, "values": sample.values})
        elif kind == "artifact":
            artifact = event_from_record(record)
            assert isinstance(artifact, ArtifactEvent)
            found[artifact.name] = {"name": artifact.name, "path": artifact.path, "size": artifact.size, "sha256": artifact.sha256}
        elif kind == "rewind":
            rewinds.append({"time": float(record["time"]), "step": int(record["step"])})
    views.metrics = drop_superseded(views.metrics, rewinds)
    views.artifacts = list(found.values())
    return views


def metric_history(paths: RunPaths) -> dict[str, list[Point]]:
    """Every live point of every metric, in logging order."""
    return read_views(paths).metrics


def system_history(paths: RunPaths) -> list[Point]:
    """Every system-monitor sample."""
    return read_views(paths).system


def artifacts(paths: RunPaths) -> list[Point]:
    """The artifacts the run recorded (latest entry per name), with size and SHA-256."""
    return read_views(paths).artifacts


def drop_superseded(history: dict[str, list[Point]], rewinds: list[Point]) -> dict[str, list[Point]]:
    """``history`` without the points a rewind superseded (logged before it, at a step after its
    step); keys left with no point are dropped. Shared by the local store and the backend readers."""
    if not rewinds:
        return history
    kept = {
        key: [p for p in points if not any(p["time"] < r["time"] and p["step"] > r["step"] for r in rewinds)]
        for key, points in history.items()
    }
    return {key: points for key, points in kept.items() if points}


def in_sync(owed: int, started: bool, refused: int) -> bool:
    """A backend is in sync when it took every event: nothing owed, and nothing refused for good
    (a refused event stays in the local store only, so the backend does not hold the whole run)."""
    return owed == 0 and started and refused == 0


def delivery_gap(state: dict[str, Any]) -> str:
    """What keeps a backend out of sync, in words: 'owes 3 event(s), refused 1 event(s) for good'."""
    parts = []
    if state.get("owed"):
        parts.append(f"owes {state['owed']} event(s)")
    if state.get("skipped_events"):
        parts.append(f"refused {state['skipped_events']} event(s) for good")
    if not state.get("started", True):
        parts.append("never started")
    return ", ".join(parts) or "not in sync"


def delivery_status(paths: RunPaths) -> dict[str, dict[str, Any]]:
    """Per remote backend: what it acknowledged, what the journal holds, and whether it is in sync."""
    run = read_json(paths.run_json, {}) or {}
    last = last_record(paths.events)
    last_seq = int(last["seq"]) if last else 0
    names = set((run.get("backends") or {}).keys())
    if paths.cursors.exists():
        names |= {p.stem for p in paths.cursors.glob("*.json")}
    status: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        recorded = (run.get("backends") or {}).get(name, {})
        cursor = read_json(paths.cursor(name), {}) or {}
        delivered = int(cursor.get("seq", recorded.get("seq", 0)))
        refused = int(cursor.get("skipped_events", 0))
        status[name] = {
            "delivered_seq": delivered,
            "last_seq": last_seq,
            "owed": max(0, last_seq - delivered),
            "in_sync": in_sync(max(0, last_seq - delivered), True, refused),
            "start_error": recorded.get("start_error"),
            "last_error": recorded.get("last_error"),
            "skipped_events": refused,
        }
    return status

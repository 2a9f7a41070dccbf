"""Reading a run's journal back: every metric point, system samples, artifacts, delivery state."""

from __future__ import annotations

from typing import Any

from unitrack.events import ArtifactEvent, MetricEvent, SystemEvent, event_from_record
from unitrack.store.fsio import read_json
from unitrack.store.journal import iter_journal, last_record
from unitrack.store.layout import RunPaths

Point = dict[str, Any]


def metric_history(paths: RunPaths) -> dict[str, list[Point]]:
    """Every logged point of every metric, in logging order: ``{key: [{step, time, value}]}``.

    A ``rewind`` event (a resumed run) drops the points logged before it at later steps: the
    run went back to that step, so they are superseded.
    """
    history: dict[str, list[Point]] = {}
    for record in iter_journal(paths.events):
        kind = record.get("kind")
        if kind == "rewind":
            step = int(record["step"])
            history = {key: [p for p in points if p["step"] <= step] for key, points in history.items()}
            history = {key: points for key, points in history.items() if points}
            continue
        if kind != "metric":
            continue
        event = MetricEvent.from_record(record)
        for key, value in event.values.items():
            history.setdefault(key, []).append({"step": event.step, "time": event.time, "value": value})
    return history


def system_history(paths: RunPaths) -> list[Point]:
    """Every system-monitor sample: ``[{time, rank, values}]``."""
    samples = []
    for record in iter_journal(paths.events):
        if record.get("kind") == "system":
            event = SystemEvent.from_record(record)
            samples.append({"time": event.time, "rank": event.rank, "values": event.values})
    return samples


def artifacts(paths: RunPaths) -> list[Point]:
    """The artifacts the run recorded (latest entry per name), with size and SHA-256."""
    found: dict[str, Point] = {}
    for record in iter_journal(paths.events):
        if record.get("kind") == "artifact":
            event = event_from_record(record)
            assert isinstance(event, ArtifactEvent)
            found[event.name] = {"name": event.name, "path": event.path, "size": event.size, "sha256": event.sha256}
    return list(found.values())


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
        status[name] = {
            "delivered_seq": delivered,
            "last_seq": last_seq,
            "owed": max(0, last_seq - delivered),
            "in_sync": delivered >= last_seq,
            "start_error": recorded.get("start_error"),
            "last_error": recorded.get("last_error"),
            "skipped_events": int(cursor.get("skipped_events", 0)),
        }
    return status

"""``unitrack sync``: deliver to each backend what it has not acknowledged, from its cursor on.

A backend's cursor (``runs/<id>/cursors/<backend>.json``) is moved, durably, after every batch
the backend acknowledged, so a sync replays exactly the events after it and a second sync finds
nothing to send. Runs still running are left to their own workers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from unitrack.backends import create_backend
from unitrack.backends.base import RunInfo
from unitrack.config import load_config
from unitrack.dispatch import BackendWorker, WorkerSettings
from unitrack.store.fsio import read_json
from unitrack.store.history import delivery_status, in_sync
from unitrack.store.layout import RunPaths
from unitrack.store.runfile import RunFile
from unitrack.store.runs import RunStore


@dataclass
class SyncResult:
    """What one sync of one run to one backend did."""

    run_id: str
    backend: str
    owed_before: int
    owed_after: int
    in_sync: bool
    delivered: int = 0
    skipped: str | None = None  # why nothing was tried
    refused: int = 0  # events the backend refused for good: it is not in sync, whatever is owed
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sync_run(store: RunStore, ref: str, backends: list[str] | None = None, timeout: float = 300.0) -> list[SyncResult]:
    """Deliver what each (or each named) backend of run ``ref`` still owes; return one result per backend."""
    paths = store.resolve(ref)
    record = store.load(paths)
    run = read_json(paths.run_json, {}) or {}
    config = load_config({k: v for k, v in (run.get("config") or {}).items() if k != "store_dir"})
    states = delivery_status(paths)
    names = list(dict.fromkeys([*config.tracking.remote_backends, *states]))
    if backends:
        unknown = sorted(set(backends) - set(names))
        if unknown:
            raise ValueError(f"run {paths.run_id} has no backend {', '.join(unknown)} (it has: {', '.join(names) or 'none'})")
        names = [name for name in names if name in backends]
    results = []
    for name in names:
        owed = states.get(name, {}).get("owed")
        owed_before = int(owed) if owed is not None else _journal_length(paths)
        result = SyncResult(paths.run_id, name, owed_before, owed_before, owed_before == 0)
        if record.status == "running":
            result.skipped = "the run is still running; its own worker delivers"
        elif owed is not None and owed == 0 and states[name].get("start_error") is None:
            refused = int(states[name].get("skipped_events", 0))
            result.refused = refused
            result.in_sync = in_sync(0, True, refused)
            result.skipped = "in sync" if result.in_sync else f"refused {refused} event(s) for good (kept locally)"
        else:
            _sync_backend(paths, run, config, name, record.status, result, timeout)
        results.append(result)
    return results


def _journal_length(paths: RunPaths) -> int:
    from unitrack.store.journal import last_record

    last = last_record(paths.events)
    return int(last["seq"]) if last else 0


def _sync_backend(
    paths: RunPaths, run: dict[str, Any], config: Any, name: str, status: str, result: SyncResult, timeout: float
) -> None:
    try:
        backend = create_backend(name, config)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return
    info = RunInfo.from_run_json(paths.root, run)
    worker = BackendWorker(backend, paths, lambda: info, WorkerSettings.from_config(config, name))
    before = worker.state.seq
    state = worker.run_until_caught_up(time.monotonic() + timeout, status)
    last = _journal_length(paths)
    result.delivered = max(0, state.seq - before)
    result.owed_after = max(0, last - state.seq)
    result.refused = state.skipped_events
    result.in_sync = in_sync(result.owed_after, state.started, state.skipped_events)
    result.error = state.start_error or state.last_error
    _record_state(paths, name, worker.state_dict(last))


def _record_state(paths: RunPaths, name: str, state: dict[str, Any]) -> None:
    """Keep ``run.json``'s per-backend delivery record current, as ``finish()`` left it."""
    data = read_json(paths.run_json, {}) or {}
    RunFile(paths.run_json, data).merge("backends", {name: state})


def sync_all(store: RunStore, backends: list[str] | None = None, timeout: float = 300.0) -> list[SyncResult]:
    """Sync every finished run of the store that owes something to a backend."""
    results: list[SyncResult] = []
    for run_id in store.run_ids():
        owed = delivery_status(store.layout.run(run_id))
        if any(not state["in_sync"] for state in owed.values()):
            results.extend(sync_run(store, run_id, backends, timeout))
    return results

"""Adding events to a run after its own process finished (``unitrack commit``'s outcome, ``clean``).

The events go into the run's journal, after its last sequence number, and the run's readable
files and index entry are brought up to date; remote backends receive them through
``unitrack.sync`` (``commit`` calls it at once), like anything else they still owe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from unitrack.backends.base import RunInfo
from unitrack.backends.local import LocalBackend
from unitrack.errors import RunNotFoundError
from unitrack.events import Event
from unitrack.store.fsio import read_json
from unitrack.store.journal import last_record
from unitrack.store.layout import RunPaths
from unitrack.store.runfile import RunFile
from unitrack.store.runs import RunStore

EventFactory = Callable[..., Event]  # called with the event's sequence number


def append_to_run(
    store: RunStore, paths: RunPaths, events: Sequence[EventFactory], status: str | None = None, **run_fields: Any
) -> None:
    """Append ``events`` (each made from its sequence number) and merge ``run_fields`` into ``run.json``.

    With ``status`` the run is closed again with it (end time and duration updated).
    """
    run = read_json(paths.run_json)
    if run is None:
        raise RunNotFoundError(f"no run.json in {paths.root}")
    run_file = RunFile(paths.run_json, run)
    if run_fields:
        run_file.update(**run_fields)
    local = LocalBackend(store, paths, run_file)
    local.open(_run_info(paths, run))
    last = last_record(paths.events)
    seq = int(last["seq"]) if last else 0
    made = [factory(seq + offset) for offset, factory in enumerate(events, start=1)]
    if made:
        local.write(made)
    if status is not None:
        local.close(status)
        return
    before = run_file.snapshot()  # not a new ending: keep the run's end time and duration
    local.close(str(before.get("status")))
    run_file.update(end_time=before.get("end_time"), duration=before.get("duration"))
    store.index.upsert([store.index_row(paths)])


def _run_info(paths: RunPaths, run: dict[str, Any]) -> RunInfo:
    return RunInfo(
        run_id=paths.run_id,
        name=str(run.get("name") or paths.run_id),
        experiment=str(run.get("experiment") or ""),
        run_dir=Path(paths.root),
        start_time=float(run.get("start_time") or 0.0),
        resumed=True,
    )

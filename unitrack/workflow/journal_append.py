"""Adding events to a run after its own process finished (``unitrack commit``'s outcome, ``clean``).

The events go into the run's journal, after its last sequence number, and the run's readable
files and index entry are brought up to date; remote backends receive them through
``unitrack.sync`` (``commit`` calls it at once), like anything else they still owe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unitrack.errors import RunNotFoundError
from unitrack.events import Event
from unitrack.store.fsio import read_json
from unitrack.store.journal import last_record
from unitrack.store.layout import RunPaths
from unitrack.store.runfile import RunFile
from unitrack.store.runs import RunStore
from unitrack.store.writer import RunWriter


def append_to_run(
    store: RunStore, paths: RunPaths, events: Sequence[Event], status: str | None = None, **run_fields: Any
) -> None:
    """Append ``events`` (numbered here, after the journal's last) and merge ``run_fields`` into ``run.json``.

    With ``status`` the run is closed again with it (end time and duration updated).
    """
    run = read_json(paths.run_json)
    if run is None:
        raise RunNotFoundError(f"no run.json in {paths.root}")
    run_file = RunFile(paths.run_json, run)
    if run_fields:
        run_file.update(**run_fields)
    local = RunWriter(store, paths, run_file)
    local.open()
    last = last_record(paths.events)
    seq = int(last["seq"]) if last else 0
    for offset, event in enumerate(events, start=1):
        event.seq = seq + offset
    if events:
        local.write(events)
    if status is not None:
        local.close(status)
        return
    before = run_file.snapshot()  # not a new ending: keep the run's end time and duration
    local.close(str(before.get("status")))
    run_file.update(end_time=before.get("end_time"), duration=before.get("duration"))
    store.index.upsert([store.index_row(paths)])


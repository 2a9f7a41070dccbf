"""A free-text note on a run: kept in the run, mirrored to its backends.

The note is a ``note`` event appended to the run's journal (the source of truth, so a backend
that is down receives it later through ``unitrack sync``) and the ``note`` field of ``run.json``
(so ``unitrack show --json`` has it at once). MLflow shows it as the run's description
(``mlflow.note.content``), W&B as the run's notes. A run still training owns its journal, so
its note waits until it has ended.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from unitrack.errors import UnitrackError
from unitrack.events import NOTE, UNNUMBERED, NoteData, RecordEvent
from unitrack.store.runs import RunStore
from unitrack.workflow.journal_append import append_to_run

MAX_NOTE_CHARS = 100_000


class NoteError(UnitrackError, ValueError):
    """A note that cannot be stored now; the message says why."""


def set_note(store: RunStore, ref: str, text: str) -> dict[str, Any]:
    """Store ``text`` as run ``ref``'s note; return ``{"run_id", "note", "time"}``."""
    if len(text) > MAX_NOTE_CHARS:
        raise NoteError(f"a note holds at most {MAX_NOTE_CHARS:,} characters (this one has {len(text):,})")
    paths = store.resolve(ref)
    if store.load(paths).status == "running":
        raise NoteError(f"run {paths.run_id} is still running: its own process writes its journal; add the note when it has ended")
    now = time.time()
    append_to_run(store, paths, [RecordEvent(UNNUMBERED, now, NOTE, NoteData(text=text))], note=text, note_time=now)
    return {"run_id": paths.run_id, "note": text, "time": now}


def deliver_in_background(store: RunStore, run_id: str, timeout: float = 60.0) -> threading.Thread:
    """Send what the run owes its remote backends (its new note) without making anyone wait."""

    def deliver() -> None:
        from unitrack.sync import sync_run

        try:
            for result in sync_run(store, run_id, timeout=timeout):
                if not result.in_sync:
                    print(f"unitrack: {result.backend} still owes {result.owed_after} event(s) of run {run_id}; `unitrack sync` delivers them", file=sys.stderr)
        except Exception as exc:  # a backend problem must not reach the dashboard's request
            print(f"unitrack: could not deliver run {run_id}'s note: {type(exc).__name__}: {exc}", file=sys.stderr)

    thread = threading.Thread(target=deliver, name=f"unitrack-note-{run_id}", daemon=True)
    thread.start()
    return thread

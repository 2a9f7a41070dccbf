"""How the ranks of one launch find rank 0's run and send it their events: one interface, two ways.

- :class:`StoreRendezvous` (``torch_store``): through torch.distributed's key-value store, when a
  process group is initialised or ``torchrun`` names its store. Any number of nodes, no shared
  filesystem: another rank's events travel to rank 0 through the store.
- :class:`FileRendezvous`: through files in the run store, for one machine without a process
  group (or nodes that share the store's filesystem): rank 0 writes ``rendezvous/<key>.json``,
  another rank writes its own journal ``runs/<id>/ranks/<rank>/events.jsonl`` that rank 0 tails.

Both are keyed by the launch (``TORCHELASTIC_RUN_ID``, ``MASTER_ADDR``/``MASTER_PORT``, the restart
count, ``SLURM_JOB_ID``/``SLURM_STEP_ID``), the experiment and how many trackers this process made
before, so a second tracker in the same job meets the second run, not the first.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from unitrack.errors import UnitrackError
from unitrack.events import Event
from unitrack.store.fsio import atomic_write_json, read_json
from unitrack.store.journal import JournalSink, JournalWriter, read_journal
from unitrack.store.layout import RunPaths
from unitrack.store.runs import RunStore

LAUNCH_ENV = (
    "TORCHELASTIC_RUN_ID",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RESTART_COUNT",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
)
_POLL_S = 0.1
_CLOCK_SLACK_S = 2.0

_generations: dict[str, int] = {}


class RankSink(JournalSink, Protocol):
    """Where another rank's journal writer puts its batches of events (a JournalSink that also closes)."""

    paths: RunPaths  # where the writer looks for a journal to continue numbering from

    def close(self, status: str, **fields: Any) -> None: ...


class RankSource(Protocol):
    """Rank 0's view of what the other ranks sent."""

    def read(self, rank: int) -> list[dict[str, Any]]:
        """The records ``rank`` sent since the last call, in order."""
        ...

    def closed(self, rank: int) -> bool:
        """True once ``rank`` finished: everything it sent is readable."""
        ...


class Rendezvous(Protocol):
    """Rank 0 publishes its run; the other ranks wait for it and send it their events."""

    def publish(self, run_id: str) -> None: ...

    def wait(self, rank: int) -> str: ...

    def sender(self, rank: int) -> RankSink: ...

    def receiver(self, ranks: Sequence[int], run_dir: Path) -> RankSource: ...


def launch_key(experiment: str) -> str:
    """The key of this launch's ``experiment`` run; each call in a process names the next tracker's."""
    launch = {name: os.environ.get(name, "") for name in LAUNCH_ENV}
    generation = _generations.get(experiment, 0)
    _generations[experiment] = generation + 1
    identity = json.dumps({"launch": launch, "experiment": experiment, "generation": generation}, sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:20]


def rendezvous_for(store: RunStore, experiment: str, timeout: float) -> Rendezvous:
    """The job's torch.distributed store when there is one, else files in ``store``."""
    from unitrack.distributed.torch_store import StoreRendezvous, job_store

    key = launch_key(experiment)
    kv = job_store()
    if kv is not None:
        return StoreRendezvous(kv, key, timeout, store.layout.launch_ranks(key))
    return FileRendezvous(store, key, timeout)


class FileRendezvous:
    """Rank 0's run id in ``<store>/rendezvous/<key>.json``; the other ranks' journals in its run folder."""

    def __init__(self, store: RunStore, key: str, timeout: float) -> None:
        self.store = store
        self.timeout = timeout
        self.path = store.layout.rendezvous(key)

    def publish(self, run_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"run_id": run_id, "time": time.time(), "pid": os.getpid()})

    def wait(self, rank: int) -> str:
        """The run id rank 0 published for this launch; raises after ``timeout`` seconds."""
        import psutil

        started = psutil.Process(os.getpid()).create_time() - _CLOCK_SLACK_S
        deadline = time.monotonic() + self.timeout
        while True:
            published = read_json(self.path, None)
            if published and self._current(published, started):
                return str(published["run_id"])
            if time.monotonic() >= deadline:
                raise UnitrackError(
                    f"rank {rank}: rank 0 published no run within {self.timeout:g} s "
                    f"(expected in {self.path}); does rank 0 create its tracker too, with the same "
                    "experiment name and store? (tracking.rank_join_timeout sets the wait)"
                )
            time.sleep(_POLL_S)

    def _current(self, published: Mapping[str, Any], started: float) -> bool:
        """Published by this launch's rank 0, not left by an earlier launch that used the same key."""
        if float(published.get("time", 0)) >= started:
            return True
        try:
            return self.store.load(str(published["run_id"])).status == "running"
        except Exception:
            return False

    def sender(self, rank: int) -> RankJournal:
        """This rank's own journal in rank 0's run folder (waits for rank 0's run id)."""
        paths = self.store.layout.run(self.wait(rank)).rank(rank)
        paths.root.mkdir(parents=True, exist_ok=True)
        return RankJournal(paths)

    def receiver(self, ranks: Sequence[int], run_dir: Path) -> FileSource:
        return FileSource(RunPaths(run_dir), ranks)


class RankJournal:
    """Another rank's own journal, ``runs/<id>/ranks/<rank>/events.jsonl``; rank 0 tails it."""

    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        self.dropped_events = 0
        self._journal: JournalWriter | None = None

    @property
    def journal_offset(self) -> int:
        return self._journal.offset if self._journal else 0

    def open(self, *args: Any) -> None:
        self._journal = JournalWriter(self.paths.events)

    def write(self, events: Sequence[Event]) -> None:
        assert self._journal is not None, "open() first"
        self._journal.append(("\n".join(event.to_json() for event in events) + "\n").encode("utf-8"))

    def flush(self) -> None:
        if self._journal is not None:
            self._journal.sync()

    def add_dropped(self, count: int) -> None:
        self.dropped_events += count

    def close(self, status: str, **fields: Any) -> None:
        """Close the journal, then say so: rank 0 waits for this file before its last merge."""
        if self._journal is not None:
            self._journal.close()
        atomic_write_json(self.paths.status_json, {"status": status, "time": time.time(), **fields})


class FileSource:
    """Rank 0 tails each other rank's journal from where it stopped."""

    def __init__(self, run: RunPaths, ranks: Sequence[int]) -> None:
        self.run = run
        self._offsets = dict.fromkeys(ranks, 0)

    def read(self, rank: int) -> list[dict[str, Any]]:
        chunk = read_journal(self.run.rank(rank).events, self._offsets[rank])
        self._offsets[rank] = chunk.end_offset
        return list(chunk.records)

    def closed(self, rank: int) -> bool:
        return self.run.rank(rank).status_json.exists()

"""The tracker's place in a run: the owner, or a follower of another rank's run.

The tracker holds one role and asks it for what differs between the two: where events go (the
queue), whether the run's own records (parameters, tags, artifacts, the model set-up, snapshots)
are kept here, checkpoint access, flushing and closing. Everything else (validation, the hot path,
the step counter) is the tracker's own, the same on every rank.

- :class:`OwnerRole`: the run's process (rank 0, or any process outside a distributed job). It
  writes the journal, feeds the backends, saves checkpoints, publishes the run through the job's
  rendezvous and, under ``rank_policy: all``, merges what the other ranks send.
- :class:`FollowerRole`: another rank. It finds rank 0's run through the rendezvous (the file
  one, or torch.distributed's store: see :mod:`unitrack.distributed.rendezvous`), records only what
  its policy allows through its own :class:`~unitrack.distributed.rendezvous.RankSink`, reads rank
  0's checkpoints (to resume every rank alike) and writes its own shards of sharded checkpoints.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from unitrack.backends.base import Backend, RunInfo
from unitrack.checkpoint.manager import CheckpointManager
from unitrack.checkpoint.registry import CheckpointInfo
from unitrack.config import Config, config_hash
from unitrack.dispatch import BackendWorker, Dispatcher, QueueItem, WorkerSettings, warn_undelivered
from unitrack.distributed.merge import RankMerger
from unitrack.distributed.ranks import current_rank
from unitrack.distributed.rendezvous import RankSink, rendezvous_for
from unitrack.events import UNNUMBERED, RecordEvent, StatusEvent
from unitrack.store.layout import RunPaths
from unitrack.store.runfile import RunFile
from unitrack.store.runs import RunStore
from unitrack.store.writer import RunWriter

GIT_WAIT_S = 15.0  # how long the backends' opening of the run waits for the git capture


class Role(Protocol):
    """What the tracker asks of its place in the run."""

    records_run: bool  # parameters, tags, artifacts, the model set-up and snapshots are kept here
    queue: deque[QueueItem]  # where this process's events go

    @property
    def run_id(self) -> str: ...

    @property
    def run_dir(self) -> Path: ...

    @property
    def monitor_disk(self) -> Path | None:
        """The disk the system monitor reports on, or None when this role records no system samples."""
        ...

    def make_room(self) -> bool: ...

    def checkpoints(self) -> CheckpointManager: ...

    def save_checkpoint(self, model: Any, *args: Any) -> CheckpointInfo | None: ...

    def flush(self, timeout: float | None) -> bool: ...

    def close(self, status: str, deadline: float, **run_fields: Any) -> dict[str, dict[str, Any]]: ...


class OwnerRole:
    """The run's own process: its journal, its backends, its checkpoints, and the other ranks' events."""

    records_run = True

    def __init__(
        self,
        config: Config,
        store: RunStore,
        paths: RunPaths,
        run_file: RunFile,
        remotes: Sequence[Backend],
    ) -> None:
        self.config = config
        self.store = store
        self.paths = paths
        self.run_file = run_file
        self.git_done = threading.Event()  # set by the start-up capture once run.json holds the git state
        self.writer = RunWriter(store, paths, run_file)
        workers = [BackendWorker(b, paths, self.run_info, WorkerSettings.from_config(config, b.name)) for b in remotes]
        self.dispatcher = Dispatcher.from_config(paths, self.writer, workers, config.tracking)
        self.queue = self.dispatcher.queue
        self._checkpoints = CheckpointManager(paths.root, paths.run_id, config.checkpointing, self.record, config_hash(config))
        self._ranks: RankMerger | None = None

    @property
    def run_id(self) -> str:
        return self.paths.run_id

    @property
    def run_dir(self) -> Path:
        return self.paths.root

    @property
    def monitor_disk(self) -> Path:
        return self.store.root

    def run_info(self) -> RunInfo:
        """What backends are told when they open the run (after the git capture, waited for briefly)."""
        self.git_done.wait(GIT_WAIT_S)
        return RunInfo.from_run_json(self.run_dir, self.run_file.snapshot())

    def start(self, experiment: str) -> None:
        """Start writing; in a distributed job, publish the run and (``rank_policy: all``) merge the other ranks."""
        self.dispatcher.start()
        ranks = current_rank()
        if not ranks.distributed:
            return
        tracking = self.config.tracking
        rendezvous = rendezvous_for(self.store, experiment, tracking.rank_join_timeout)
        rendezvous.publish(self.run_id)
        if tracking.rank_policy == "all":
            source = rendezvous.receiver(range(1, ranks.world_size), self.run_dir)
            self._ranks = RankMerger(source, ranks.world_size, self.queue, tracking.rank_metrics)

    def record(self, kind: str, data: Mapping[str, Any]) -> None:
        """Journal a record of ``kind`` (checkpoints, rewinds...)."""
        self.queue.append(RecordEvent(UNNUMBERED, time.time(), kind, data))

    def make_room(self) -> bool:
        return self.dispatcher.make_room()

    def checkpoints(self) -> CheckpointManager:
        return self._checkpoints

    def save_checkpoint(self, model: Any, *args: Any) -> CheckpointInfo | None:
        return self._checkpoints.save(model, *args)

    def flush(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._checkpoints.wait()
        return self.dispatcher.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def close(self, status: str, deadline: float, **run_fields: Any) -> dict[str, dict[str, Any]]:
        """Finish the checkpoints, the other ranks' merge and the journal; return what each backend still owes."""
        self._checkpoints.close(max(0.0, deadline - time.monotonic()))
        if self._ranks is not None:
            self._ranks.close(min(self.config.tracking.rank_join_timeout, max(0.0, deadline - time.monotonic())))
        self.queue.append(StatusEvent(UNNUMBERED, time.time(), status))
        states = self.dispatcher.close(max(0.0, deadline - time.monotonic()))
        self.writer.close(status, backends=states, **run_fields)
        warn_undelivered(self.run_id, states)
        return states


def _ignore_event(kind: str, data: Mapping[str, Any]) -> None:
    """A follower's checkpoint access records nothing: rank 0 owns the journal."""


class FollowerRole:
    """Another rank of a distributed job: it joins rank 0's run and records only what its policy allows."""

    records_run = False

    def __init__(self, config: Config, store: RunStore, experiment: str, rank: int) -> None:
        self.config = config
        self.store = store
        self.rank = rank
        tracking = config.tracking
        self._rendezvous = rendezvous_for(store, experiment, tracking.rank_join_timeout)
        self._run_id: str | None = None
        self._sink: RankSink | None = None
        self._dispatcher: Dispatcher | None = None
        self._shards: CheckpointManager | None = None  # writes this rank's shards of sharded checkpoints
        self.queue: deque[QueueItem] = deque(maxlen=0)  # appending drops: the no-op of rank_policy rank0
        if tracking.rank_policy == "all":
            self._sink = self._rendezvous.sender(rank)
            self._dispatcher = Dispatcher.from_config(self._sink.paths, self._sink, [], tracking)
            self.queue = self._dispatcher.queue
            self._dispatcher.start()

    @property
    def run_id(self) -> str:
        """Rank 0's run id (waited for on first use under ``rank_policy: rank0``)."""
        if self._run_id is None:
            self._run_id = self._rendezvous.wait(self.rank)
        return self._run_id

    @property
    def run_dir(self) -> Path:
        return self.store.layout.run(self.run_id).root

    @property
    def monitor_disk(self) -> Path | None:
        if self._dispatcher is None:
            return None
        return next(p for p in (self.store.root, *self.store.root.parents) if p.exists())  # none on a node without the run

    def make_room(self) -> bool:
        return self._dispatcher.make_room() if self._dispatcher is not None else False

    def checkpoints(self) -> CheckpointManager:
        """Rank 0's registry as it is now (read again on every call: rank 0 keeps saving)."""
        if self._shards is not None:
            self._shards.wait()
        return CheckpointManager(self.run_dir, self.run_id, self.config.checkpointing, _ignore_event, "", owner=False)

    def save_checkpoint(self, model: Any, *args: Any) -> CheckpointInfo | None:
        """A whole model is saved by rank 0 (None here, as for a skipped save); a sharded one
        (DTensor parameters, FSDP2) by every rank together: this rank writes its shards."""
        from unitrack.checkpoint.state import is_sharded

        if not is_sharded(model):
            return None
        if self._shards is None:
            self._shards = self.checkpoints()
        return self._shards.save(model, *args)

    def flush(self, timeout: float | None) -> bool:
        if self._shards is not None:
            self._shards.wait()
        return self._dispatcher.flush(timeout) if self._dispatcher is not None else True

    def close(self, status: str, deadline: float, **run_fields: Any) -> dict[str, dict[str, Any]]:
        """Close this rank's journal (rank 0 finishes the run itself)."""
        if self._shards is not None:
            self._shards.close(max(0.0, deadline - time.monotonic()))
        if self._dispatcher is not None and self._sink is not None:
            self._dispatcher.close(max(0.0, deadline - time.monotonic()))
            self._sink.close(status, rank=self.rank)
        return {}

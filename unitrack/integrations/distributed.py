"""Distributed training (``torchrun``, SLURM): one run per job, owned by rank 0.

Every rank creates its tracker the same way (``ExperimentTracker(...)``); what it gets depends
on its rank, read from ``torch.distributed`` when it is initialised, else from ``RANK``,
``LOCAL_RANK`` or ``SLURM_PROCID`` (the first one set, as Lightning reads them):

- rank 0 creates the run and publishes its id through the launch's rendezvous
  (:mod:`unitrack.distributed.rendezvous`): torch.distributed's key-value store when a process
  group is initialised or ``torchrun`` names its store (any nodes, no shared filesystem), else a
  file in the store (one machine);
- the other ranks join that run (same ``run_id``) instead of making their own. With
  ``tracking.rank_policy: rank0`` (the default) their metrics, parameters, tags, artifacts and
  snapshots are no-ops, and so are whole-model checkpoints; a sharded model's checkpoint is
  saved by every rank. They can read the run's checkpoints (``load_checkpoint`` to resume every
  rank from rank 0's save). With ``rank_policy: all`` each one also sends its system samples and
  the metrics matching ``tracking.rank_metrics`` through the rendezvous, and rank 0 merges them
  into the run: system samples carry ``rank``, metrics are named ``rank<r>/<key>``. Parameters
  stay rank 0's.

No collective call: a rank that never makes a tracker cannot hang the others, and it works
before, after or without ``init_process_group``.
"""

from __future__ import annotations

import atexit
import fnmatch
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitrack.backends.base import Backend, RunInfo
from unitrack.checkpoint.manager import CheckpointManager
from unitrack.config import Config, TrackingConfig
from unitrack.dispatch import Dispatcher, WorkerSettings
from unitrack.distributed.rendezvous import RankSink, RankSource, rendezvous_for
from unitrack.errors import UnitrackError
from unitrack.progress import ProgressReporter
from unitrack.store.runs import RunStore
from unitrack.tracker import _FINISHED, _FINISHING, _RUNNING, FINAL_STATUSES, ExperimentTracker

log = logging.getLogger("unitrack")

RANK_ENV = ("RANK", "LOCAL_RANK", "SLURM_PROCID")
WORLD_SIZE_ENV = ("WORLD_SIZE", "SLURM_NTASKS")
_POLL_S = 0.1
_MERGE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the job."""

    rank: int
    world_size: int

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.rank > 0


def current_rank() -> RankInfo:
    """The rank and world size: from ``torch.distributed`` when initialised, else the environment."""
    dist = sys.modules.get("torch.distributed")  # never imported here: a process without torch is rank 0
    if dist is not None and dist.is_available() and dist.is_initialized():
        return RankInfo(dist.get_rank(), dist.get_world_size())
    rank = _first_int(RANK_ENV, 0)
    return RankInfo(rank, max(_first_int(WORLD_SIZE_ENV, 1), rank + 1))


def _first_int(names: Sequence[str], default: int) -> int:
    for name in names:
        text = os.environ.get(name, "").strip()
        if text:
            try:
                return int(text)
            except ValueError:
                raise UnitrackError(f"environment variable {name}={text!r} is not an integer") from None
    return default


def tracker_class_for_this_rank() -> type[ExperimentTracker]:
    """What ``ExperimentTracker(...)`` builds here: the run's owner, or a rank that joins it."""
    return RankFollower if current_rank().rank > 0 else ExperimentTracker


# --- rank 0: publish, and merge the other ranks' journals -----------------------------------------


class RankMerger:
    """On rank 0 under ``rank_policy: all``: moves what the other ranks sent into the run's queue."""

    def __init__(self, source: RankSource, world_size: int, queue: deque[tuple[Any, ...]], patterns: Sequence[str]) -> None:
        self._source = source
        self._ranks = range(1, world_size)
        self._queue = queue
        self._patterns = list(patterns)
        self._chosen: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unitrack-ranks", daemon=True)
        self._thread.start()

    def merge(self) -> int:
        """Enqueue what the ranks wrote since the last call; return how many events that was."""
        moved = 0
        with self._lock:
            for rank in self._ranks:
                for record in self._source.read(rank):
                    moved += self._enqueue(rank, record)
        return moved

    def close(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for every rank to say it finished, then merge the rest."""
        deadline = time.monotonic() + timeout
        waiting = set(self._ranks)
        while waiting and time.monotonic() < deadline:
            waiting = {rank for rank in waiting if not self._closed(rank)}
            if waiting:
                time.sleep(_POLL_S)
        self._stop.set()
        self._thread.join(2.0)
        try:
            self.merge()
        except Exception as exc:
            log.warning("unitrack: the last merge of the other ranks' events failed: %s", exc)
        if waiting:
            log.warning(
                "unitrack: rank(s) %s had not finished after %.0f s (dead, or still running); "
                "what they send later is not part of the run",
                sorted(waiting),
                timeout,
            )

    def _closed(self, rank: int) -> bool:
        try:
            return self._source.closed(rank)
        except Exception:  # the store went away with the job: nothing more will come
            return True

    def _run(self) -> None:
        while not self._stop.wait(_MERGE_INTERVAL_S):
            try:
                self.merge()
            except Exception as exc:  # a rank's bad file must not end the merging of the others
                log.warning("unitrack: merging the other ranks' events failed: %s", exc)

    def _enqueue(self, rank: int, record: Mapping[str, Any]) -> int:
        kind = record.get("kind")
        if kind == "system":
            self._queue.append(("system", record["time"], dict(record["values"]), rank))
            return 1
        if kind == "metric":
            values = {f"rank{rank}/{key}": value for key, value in record["values"].items() if self._is_chosen(key)}
            if values:
                self._queue.append(("metric", record["step"], record["time"], values))
                return 1
        return 0

    def _is_chosen(self, key: str) -> bool:
        chosen = self._chosen.get(key)
        if chosen is None:
            chosen = self._chosen[key] = any(fnmatch.fnmatchcase(key, p) for p in self._patterns)
        return chosen


def lead_run(tracker: ExperimentTracker) -> RankMerger | None:
    """On rank 0 of a distributed job: publish the run; under ``rank_policy: all``, merge the others."""
    ranks = current_rank()
    if not ranks.distributed:
        return None
    tracking = tracker.config.tracking
    rendezvous = rendezvous_for(tracker.store, tracker.experiment, tracking.rank_join_timeout)
    rendezvous.publish(tracker.run_id)
    if tracking.rank_policy != "all":
        return None
    source = rendezvous.receiver(range(1, ranks.world_size), tracker.run_dir)
    return RankMerger(source, ranks.world_size, tracker._queue, tracking.rank_metrics)


# --- the other ranks ----------------------------------------------------------------------------


def _ignore_event(kind: str, data: dict[str, Any]) -> None:
    """A follower's checkpoint reader records nothing: rank 0 owns the journal."""


class RankFollower(ExperimentTracker):
    """The tracker of a rank other than 0: it joins rank 0's run and records only what its policy allows.

    Built by ``ExperimentTracker(...)`` itself on such a rank, so training scripts need no
    ``if rank == 0`` around tracking calls.
    """

    def __init__(
        self,
        name: str,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        run_name: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
        backends: Sequence[Backend] = (),
        resume: str | None = None,
    ) -> None:
        self._set_identity(name, config, run_name)
        self.rank = current_rank().rank
        tracking: TrackingConfig = self.config.tracking
        self._state = _RUNNING
        self._step = 0
        self._metric_keys: set[str] = set()
        self._params: dict[str, Any] = {}
        self._progress = None
        self._monitor = None
        self._dispatcher: Dispatcher | None = None  # type: ignore[assignment]
        self._journal: RankSink | None = None
        self._queue: deque[tuple[Any, ...]] = deque(maxlen=0)  # appending to it drops: the no-op of rank0 policy
        self._queue_limit = tracking.queue_size
        self.store = RunStore(self.config.store_dir)
        self._rendezvous = rendezvous_for(self.store, self.experiment, tracking.rank_join_timeout)
        self._run_id: str | None = None
        self._shards: CheckpointManager | None = None  # writes this rank's shards of sharded checkpoints
        if tracking.rank_policy == "all":
            self._record_own_events(tracking)

    @property
    def run_id(self) -> str:  # type: ignore[override]
        """Rank 0's run id (waited for on first use under ``rank_policy: rank0``)."""
        if self._run_id is None:
            self._run_id = self._rendezvous.wait(self.rank)
        return self._run_id

    @property
    def run_dir(self) -> Path:  # type: ignore[override]
        return self.store.layout.run(self.run_id).root

    def _record_own_events(self, tracking: TrackingConfig) -> None:
        from unitrack.capture.system import SystemMonitor

        self._journal = self._rendezvous.sender(self.rank)
        self._dispatcher = Dispatcher(
            self._journal.paths,
            self._journal,  # type: ignore[arg-type]  # the dispatcher only writes and flushes its local journal
            [],
            self._rank_info,
            flush_interval=tracking.flush_interval,
            queue_size=tracking.queue_size,
            queue_full=tracking.queue_full,
            queue_block_timeout=tracking.queue_block_timeout,
            worker_settings=WorkerSettings(),
        )
        self._queue = self._dispatcher.queue
        self._dispatcher.start(self._rank_info())
        atexit.register(self._at_exit)
        if self.config.monitoring.enabled:
            disk = next(p for p in (self.store.root, *self.store.root.parents) if p.exists())  # none on a node without the run
            self._monitor = SystemMonitor(self.config.monitoring, disk, self._emit_system)
            self._monitor.start()

    def _rank_info(self) -> RunInfo:
        """What the journal writer is told of the run (a sink never needs rank 0's id: no wait for it here)."""
        assert self._journal is not None
        return RunInfo(self._run_id or "", self.name, self.experiment, self._journal.paths.root, time.time())

    # --- what rank 0 alone records --------------------------------------------------------------

    def log_hyperparameters(self, params: Any) -> None:
        """Parameters are rank 0's: a no-op here."""

    log_params = log_hyperparameters

    def set_tags(self, tags: Any) -> None:
        """Tags are rank 0's: a no-op here."""

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> Path:
        """Artifacts are rank 0's: nothing is copied; returns ``path``."""
        return Path(path)

    def watch(self, model: Any, *args: Any, **kwargs: Any) -> None:
        """The model set-up, snapshots and gradients are recorded by rank 0: a no-op here."""

    def progress(self, total_steps: int, description: str | None = None, interval: float = 1.0) -> ProgressReporter:
        """Rank 0 shows the bar: this one is never started."""
        return ProgressReporter(total_steps, lambda: self._step, lambda sample, step: None, interval=interval)

    def save_checkpoint(
        self,
        model: Any,
        epoch: int,
        step: int,
        optimizer: Any = None,
        scheduler: Any = None,
        scaler: Any = None,
        is_best: bool | None = None,
        extra: Any = None,
        **metrics: Any,
    ) -> Any:
        """A whole model is saved by rank 0 (returns None here, as for a skipped save); a sharded one
        (DTensor parameters, FSDP2) by every rank together: this rank writes its shards."""
        from unitrack.checkpoint.state import is_sharded

        if not is_sharded(model):
            return None
        if self._shards is None:
            self._shards = self._checkpoints_of_run()
        return self._shards.save(model, epoch, step, optimizer, scheduler, scaler, is_best, extra, metrics)

    def snapshot_weights(self, model: Any, step: int | None = None, tag: str | None = None) -> None:
        """Snapshots are taken by rank 0: a no-op here."""
        return None

    # --- reading rank 0's checkpoints (to resume every rank) ------------------------------------

    def list_checkpoints(self) -> list[Any]:
        return self._checkpoints_of_run().kept()

    def get_best_checkpoint(self) -> Any:
        return self._checkpoints_of_run().best()

    def load_checkpoint(
        self, checkpoint: Any, model: Any, optimizer: Any = None, scheduler: Any = None, scaler: Any = None
    ) -> tuple[int, int]:
        if self._shards is not None:
            self._shards.wait()
        return self._checkpoints_of_run().load(checkpoint, model, optimizer, scheduler, scaler)

    def load_best(self, model: Any, optimizer: Any = None, scheduler: Any = None, scaler: Any = None) -> tuple[int, int]:
        return self.load_checkpoint("best", model, optimizer, scheduler, scaler)

    def _checkpoints_of_run(self) -> Any:
        """Rank 0's registry as it is now (read again on every call: rank 0 keeps saving)."""
        return CheckpointManager(self.run_dir, self.run_id, self.config.checkpointing, _ignore_event, "", owner=False)

    # --- life ------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        if self._shards is not None:
            self._shards.wait()
        return self._dispatcher.flush(timeout) if self._dispatcher is not None else True

    def finish(self, status: str = "completed", timeout: float | None = None) -> None:
        """Close this rank's journal (rank 0 finishes the run itself)."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, not {status!r}")
        if self._state is not _RUNNING:
            return
        self._state = _FINISHING
        try:
            if self._shards is not None:
                self._shards.close(self.config.tracking.finish_timeout if timeout is None else timeout)
            if self._monitor is not None:
                self._monitor.stop()
            if self._dispatcher is not None and self._journal is not None:
                budget = self.config.tracking.finish_timeout if timeout is None else timeout
                self._dispatcher.close(budget)
                self._journal.close(status, rank=self.rank)
        finally:
            self._state = _FINISHED
            atexit.unregister(self._at_exit)

    def __repr__(self) -> str:
        return f"RankFollower(rank={self.rank}, experiment={self.experiment!r}, state={self._state!r})"

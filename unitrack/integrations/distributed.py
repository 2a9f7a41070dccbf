"""Distributed training (``torchrun``, SLURM): one run per job, owned by rank 0.

Every rank creates its tracker the same way (``ExperimentTracker(...)``); what it gets depends
on its rank, read from ``torch.distributed`` when it is initialised, else from ``RANK``,
``LOCAL_RANK`` or ``SLURM_PROCID`` (the first one set, as Lightning reads them):

- rank 0 creates the run and publishes its id in ``<store>/rendezvous/<key>.json``, where the
  key names the launch (``TORCHELASTIC_RUN_ID``, ``MASTER_ADDR``/``MASTER_PORT``, the restart
  count, ``SLURM_JOB_ID``/``SLURM_STEP_ID``), the experiment, and how many trackers this process
  made before (so a second tracker in the same job joins the second run, not the first);
- the other ranks join that run (same ``run_id``) instead of making their own. With
  ``tracking.rank_policy: rank0`` (the default) their metrics, parameters, tags, artifacts,
  checkpoints and snapshots are no-ops; they can still read the run's checkpoints
  (``load_checkpoint`` to resume every rank from rank 0's save). With ``rank_policy: all`` each
  one also writes its system samples and the metrics matching ``tracking.rank_metrics`` to its
  own journal (``runs/<id>/ranks/<rank>/events.jsonl``), which rank 0 merges into the run:
  system samples carry ``rank``, metrics are named ``rank<r>/<key>``. Parameters stay rank 0's.

File-based on purpose: it needs no collective call (a rank that never makes a tracker cannot
hang the others) and works before, after or without ``init_process_group``. It needs a store
that all ranks see: any local disk on one node, a shared file system across nodes.
"""

from __future__ import annotations

import atexit
import fnmatch
import hashlib
import json
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

from unitrack.backends.base import Backend
from unitrack.checkpoint.manager import CheckpointManager
from unitrack.config import Config, TrackingConfig
from unitrack.dispatch import Dispatcher, QueueItem
from unitrack.errors import UnitrackError
from unitrack.events import UNNUMBERED, Event, MetricEvent, SystemEvent
from unitrack.progress import ProgressReporter
from unitrack.store.fsio import atomic_write_json, read_json
from unitrack.store.journal import JournalWriter, read_journal
from unitrack.store.layout import RunPaths
from unitrack.store.runs import RunStore
from unitrack.tracker import _FINISHED, _FINISHING, _RUNNING, FINAL_STATUSES, ExperimentTracker

log = logging.getLogger("unitrack")

RANK_ENV = ("RANK", "LOCAL_RANK", "SLURM_PROCID")
WORLD_SIZE_ENV = ("WORLD_SIZE", "SLURM_NTASKS")
LAUNCH_ENV = (
    "TORCHELASTIC_RUN_ID",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RESTART_COUNT",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
)
RANKS_FOLDER = "ranks"
RENDEZVOUS_FOLDER = "rendezvous"
_STATUS_FILE = "status.json"
_POLL_S = 0.1
_MERGE_INTERVAL_S = 1.0
_CLOCK_SLACK_S = 2.0


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


# --- finding the run: rank 0 publishes, the others wait ------------------------------------------

_generations: dict[str, int] = {}


class RunRendezvous:
    """Where rank 0 leaves its run id for the other ranks of the same launch."""

    def __init__(self, store_root: Path, experiment: str) -> None:
        launch = {name: os.environ.get(name, "") for name in LAUNCH_ENV}
        generation = _generations.get(experiment, 0)
        _generations[experiment] = generation + 1
        identity = json.dumps({"launch": launch, "experiment": experiment, "generation": generation}, sort_keys=True)
        key = hashlib.sha256(identity.encode()).hexdigest()[:20]
        self.path = store_root / RENDEZVOUS_FOLDER / f"{key}.json"

    def publish(self, run_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"run_id": run_id, "time": time.time(), "pid": os.getpid()})

    def wait(self, store: RunStore, timeout: float) -> str:
        """The run id rank 0 published for this launch; raises after ``timeout`` seconds."""
        import psutil

        started = psutil.Process(os.getpid()).create_time() - _CLOCK_SLACK_S
        deadline = time.monotonic() + timeout
        while True:
            published = read_json(self.path, None)
            if published and self._current(published, started, store):
                return str(published["run_id"])
            if time.monotonic() >= deadline:
                raise UnitrackError(
                    f"rank {current_rank().rank}: rank 0 published no run within {timeout:g} s "
                    f"(expected in {self.path}); does rank 0 create its tracker too, with the same "
                    "experiment name and store? (tracking.rank_join_timeout sets the wait)"
                )
            time.sleep(_POLL_S)

    @staticmethod
    def _current(published: Mapping[str, Any], started: float, store: RunStore) -> bool:
        """Published by this launch's rank 0, not left by an earlier launch that used the same key."""
        if float(published.get("time", 0)) >= started:
            return True
        try:
            return store.load(str(published["run_id"])).status == "running"
        except Exception:
            return False


# --- rank 0: publish, and merge the other ranks' journals -----------------------------------------


class RankMerger:
    """On rank 0 under ``rank_policy: all``: moves the other ranks' journals into the run's queue."""

    def __init__(self, run_dir: Path, world_size: int, queue: deque[QueueItem], patterns: Sequence[str]) -> None:
        self._folder = run_dir / RANKS_FOLDER
        self._ranks = range(1, world_size)
        self._queue = queue
        self._patterns = list(patterns)
        self._offsets = dict.fromkeys(self._ranks, 0)
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
                chunk = read_journal(self._folder / str(rank) / "events.jsonl", self._offsets[rank])
                self._offsets[rank] = chunk.end_offset
                for record in chunk.records:
                    moved += self._enqueue(rank, record)
        return moved

    def close(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for every rank to finish its journal, then merge the rest."""
        deadline = time.monotonic() + timeout
        waiting = set(self._ranks)
        while waiting and time.monotonic() < deadline:
            waiting = {rank for rank in waiting if not (self._folder / str(rank) / _STATUS_FILE).exists()}
            if waiting:
                time.sleep(_POLL_S)
        self._stop.set()
        self._thread.join(2.0)
        self.merge()
        if waiting:
            log.warning(
                "unitrack: rank(s) %s had not finished after %.0f s; what they log later stays in %s",
                sorted(waiting),
                timeout,
                self._folder,
            )

    def _run(self) -> None:
        while not self._stop.wait(_MERGE_INTERVAL_S):
            try:
                self.merge()
            except Exception as exc:  # a rank's bad file must not end the merging of the others
                log.warning("unitrack: merging the other ranks' events failed: %s", exc)

    def _enqueue(self, rank: int, record: Mapping[str, Any]) -> int:
        kind = record.get("kind")
        if kind == SystemEvent.kind:
            sample = SystemEvent.from_record(record)
            self._queue.append(SystemEvent(UNNUMBERED, sample.time, sample.values, rank))
            return 1
        if kind == MetricEvent.kind:
            event = MetricEvent.from_record(record)
            values = {f"rank{rank}/{key}": value for key, value in event.values.items() if self._is_chosen(key)}
            if values:
                self._queue.append(MetricEvent(UNNUMBERED, event.time, event.step, values))
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
    RunRendezvous(tracker.store.root, tracker.experiment).publish(tracker.run_id)
    tracking = tracker.config.tracking
    if tracking.rank_policy != "all":
        return None
    return RankMerger(tracker.run_dir, ranks.world_size, tracker._queue, tracking.rank_metrics)


# --- the other ranks ----------------------------------------------------------------------------


class RankJournal:
    """A non-zero rank's own journal (a JournalSink), ``runs/<id>/ranks/<rank>/events.jsonl``; rank 0 merges it."""

    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        self.dropped_events = 0
        self._journal: JournalWriter | None = None

    @property
    def journal_offset(self) -> int:
        return self._journal.offset if self._journal else 0

    def open(self) -> None:
        self._journal = JournalWriter(self.paths.events)

    def add_dropped(self, count: int) -> None:
        self.dropped_events += count

    def write(self, events: Sequence[Event]) -> None:
        assert self._journal is not None, "open() first"
        self._journal.append(("\n".join(event.to_json() for event in events) + "\n").encode("utf-8"))

    def flush(self) -> None:
        if self._journal is not None:
            self._journal.sync()

    def close(self, status: str, **fields: Any) -> None:
        """Close the journal, then say so: rank 0 waits for this file before its last merge."""
        if self._journal is not None:
            self._journal.close()
        atomic_write_json(self.paths.root / _STATUS_FILE, {"status": status, "time": time.time(), **fields})


def _ignore_event(kind: str, data: Mapping[str, Any]) -> None:
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
        self._journal: RankJournal | None = None
        self._queue: deque[QueueItem] = deque(maxlen=0)  # appending to it drops: the no-op of rank0 policy
        self._queue_limit = tracking.queue_size
        self.store = RunStore(self.config.store_dir)
        self._rendezvous = RunRendezvous(self.store.root, self.experiment)
        self._run_id: str | None = None
        if tracking.rank_policy == "all":
            self._record_own_events(tracking)

    @property
    def run_id(self) -> str:  # type: ignore[override]
        """Rank 0's run id (waited for on first use under ``rank_policy: rank0``)."""
        if self._run_id is None:
            self._run_id = self._rendezvous.wait(self.store, self.config.tracking.rank_join_timeout)
        return self._run_id

    @property
    def run_dir(self) -> Path:  # type: ignore[override]
        return self.store.layout.run(self.run_id).root

    def _record_own_events(self, tracking: TrackingConfig) -> None:
        from unitrack.capture.system import SystemMonitor

        paths = RunPaths(self.run_dir / RANKS_FOLDER / str(self.rank))
        paths.root.mkdir(parents=True, exist_ok=True)
        self._journal = RankJournal(paths)
        self._dispatcher = Dispatcher.from_config(paths, self._journal, [], tracking)
        self._queue = self._dispatcher.queue
        self._dispatcher.start()
        atexit.register(self._at_exit)
        if self.config.monitoring.enabled:
            self._monitor = SystemMonitor(self.config.monitoring, self.store.root, self._emit_system)
            self._monitor.start()

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

    def save_checkpoint(self, model: Any, epoch: int, step: int, *args: Any, **kwargs: Any) -> None:
        """Checkpoints are written by rank 0: returns None, as for a skipped save."""
        return None

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
        return self._checkpoints_of_run().load(checkpoint, model, optimizer, scheduler, scaler)

    def load_best(self, model: Any, optimizer: Any = None, scheduler: Any = None, scaler: Any = None) -> tuple[int, int]:
        return self.load_checkpoint("best", model, optimizer, scheduler, scaler)

    def _checkpoints_of_run(self) -> Any:
        """Rank 0's registry as it is now (read again on every call: rank 0 keeps saving)."""
        return CheckpointManager(self.run_dir, self.run_id, self.config.checkpointing, _ignore_event, "", owner=False)

    # --- life ------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        return self._dispatcher.flush(timeout) if self._dispatcher is not None else True

    def finish(self, status: str = "completed", timeout: float | None = None) -> None:
        """Close this rank's journal (rank 0 finishes the run itself)."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, not {status!r}")
        if self._state is not _RUNNING:
            return
        self._state = _FINISHING
        try:
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

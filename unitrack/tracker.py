"""``ExperimentTracker``: the one object a training loop talks to.

Its ``log_*`` calls validate, stamp and enqueue; they never touch the disk, the network or the
GPU. The dispatcher writes the journal and feeds the backends on its own threads. Leaving the
``with`` block (or ``finish()``) records the run's end: ``completed``, or ``failed`` /
``interrupted`` when an exception or Ctrl-C left it; SIGTERM flushes and marks ``interrupted``;
a process that dies without finishing reads as ``crashed``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from unitrack.backends import create_backends
from unitrack.backends.base import Backend
from unitrack.capture.graph import GRAPH_ARTIFACT, model_graph
from unitrack.capture.jobs import CaptureJobs, capture_start, record_setup, training_setup
from unitrack.capture.system import SystemMonitor
from unitrack.checkpoint.registry import CheckpointInfo
from unitrack.commit_env import tags_from, tags_from_env
from unitrack.config import ConfigSource, load_config
from unitrack.distributed.ranks import current_rank
from unitrack.distributed.roles import FollowerRole, OwnerRole, Role
from unitrack.events import ERROR, UNNUMBERED, MetricEvent, ParamsEvent, RecordEvent, SystemEvent, TagsEvent
from unitrack.failure import describe_failure
from unitrack.lifecycle import RunLifecycle, peak_rss_mb, status_for
from unitrack.metric_values import add_metric_value, check_metric_key, checked_step
from unitrack.names import validate_name
from unitrack.params import flatten_params
from unitrack.progress import ProgressReporter
from unitrack.run_record import open_run_record
from unitrack.store.artifacts import RunArtifacts
from unitrack.store.runs import RunStore

FINAL_STATUSES = ("completed", "failed", "interrupted", "pruned")
_RUNNING, _FINISHING, _FINISHED = "running", "finishing", "finished"
_CAPTURE_WAIT_S = 15.0


class ExperimentTracker:
    """Tracks one run: metrics, hyperparameters, artifacts, system usage and the model set-up.

    ``config`` is anything :func:`unitrack.load_config` takes: a YAML path, a dict, a
    :class:`Config` or None. ``backends`` adds backend instances of your own to the configured ones.
    ``resume`` (a run id, a prefix, or "last") continues that run from its last (or, with
    ``checkpointing.resume_from: best``, best) checkpoint that verifies: see ``resumed_from``.
    """

    def __init__(
        self,
        name: str,
        config: ConfigSource = None,
        *,
        run_name: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
        backends: Sequence[Backend] = (),
        resume: str | None = None,
    ) -> None:
        self.experiment = validate_name(name, "experiment name")
        self.config = load_config(config)
        self.name = validate_name(run_name or self.config.run_name or self.experiment, "run name")

        # hot-path state, read by log_metrics on every call
        self._state = _RUNNING
        self._step = 0
        self._metric_keys: set[str] = set()
        self._params: dict[str, Any] = {}

        self._queue_limit = self.config.tracking.queue_size
        self._progress: ProgressReporter | None = None
        self._monitor: SystemMonitor | None = None
        self._weights: Any = None  # unitrack.weights.session.WeightsSession, made on first use
        self._failure: dict[str, Any] | None = None  # the exception that ended the run, for run.json and the backends
        self._lifecycle = RunLifecycle(self._end_from_lifecycle)
        self._jobs = CaptureJobs()
        self.store = RunStore(self.config.store_dir)
        self.resumed_from: CheckpointInfo | None = None

        rank = current_rank().rank
        if rank > 0:  # another rank of a distributed job: it joins rank 0's run (unitrack.distributed)
            self._role: Role = FollowerRole(self.config, self.store, self.experiment, rank)
            self._queue = self._role.queue
            if self._role.monitor_disk is not None:  # rank_policy: all
                self._start_monitor()
                self._lifecycle.start(signals=False)
            return

        remotes = [*create_backends(self.config), *backends]  # before the run exists: a missing extra fails fast
        start = time.time()
        run_tags = {**tags_from(self.config.tags), **tags_from(tags), **tags_from_env()}
        self._paths, run_file = open_run_record(self.store, self.experiment, self.name, self.config, run_tags, resume, start)
        owner = OwnerRole(self.config, self.store, self._paths, run_file, remotes)
        self._role = owner
        self._queue = owner.queue
        self._artifacts = RunArtifacts(self._paths, self._queue.append)
        self._jobs.submit(capture_start, self.config.capture, run_file, self._artifacts, self.store.root, owner.git_done)
        owner.start(self.experiment)
        if resume is not None:
            self.resumed_from = owner.checkpoints().rewind()
            if self.resumed_from is not None:
                self._step = self.resumed_from.step + 1
        if run_tags:
            self._queue.append(TagsEvent(UNNUMBERED, start, dict(run_tags)))
        self._start_monitor()
        self._lifecycle.start(signals=self.config.capture.handle_signals)

    def _start_monitor(self) -> None:
        disk = self._role.monitor_disk
        if self.config.monitoring.enabled and disk is not None:
            self._monitor = SystemMonitor(self.config.monitoring, disk, self._emit_system)
            self._monitor.start()

    @property
    def run_id(self) -> str:
        """The run's id (on another rank of a distributed job: rank 0's, waited for on first use)."""
        return self._role.run_id

    @property
    def run_dir(self) -> Path:
        """The run's folder in the local store."""
        return self._role.run_dir

    # --- the public API -----------------------------------------------------------------------

    @property
    def step(self) -> int:
        """The step the next ``log_metrics`` call without ``step`` will use."""
        return self._step

    @property
    def params(self) -> dict[str, Any]:
        """The hyperparameters logged so far (flattened and redacted), as stored."""
        return dict(self._params)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record metric values at ``step`` (default: one past the last step).

        Values may be Python numbers, NumPy scalars or one-element tensors (read off the
        training thread, so a CUDA tensor never forces a sync here). NaN and inf are recorded.
        """
        if self._state is not _RUNNING:
            self._require_running()
        if step is None:
            step = self._step
        elif type(step) is not int or step < 0:
            step = checked_step(step)
        values: dict[str, Any] = {}
        known = self._metric_keys
        for key, value in metrics.items():
            if key not in known:
                check_metric_key(key, known)
            cls = type(value)
            if cls is float or cls is int:
                values[key] = value
            else:
                add_metric_value(key, value, values, known)
        queue = self._queue
        if len(queue) >= self._queue_limit and not self._role.make_room():
            return
        queue.append(MetricEvent(UNNUMBERED, time.time(), step, values))
        self._step = step + 1

    def log_hyperparameters(self, params: Any) -> None:
        """Record hyperparameters (a mapping, dataclass, Namespace, pydantic model or DictConfig)."""
        self._require_running()
        if not self._role.records_run:  # parameters are rank 0's
            return
        flat = flatten_params(params)
        if flat:
            self._params.update(flat)
            self._queue.append(ParamsEvent(UNNUMBERED, time.time(), flat))

    log_params = log_hyperparameters

    def set_tags(self, tags: Mapping[str, Any] | Sequence[str]) -> None:
        """Add or change run tags (``{"k": "v"}``, or labels ``["nlp"]``)."""
        self._require_running()
        if not self._role.records_run:  # tags are rank 0's
            return
        values = tags_from(tags)
        if values:
            self._queue.append(TagsEvent(UNNUMBERED, time.time(), values))

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> Path:
        """Copy a file or folder into the run now, and mirror it to the backends; return its stored path.

        The copy is made before returning, so the original may be changed or deleted at once.
        """
        self._require_running()
        if not self._role.records_run:  # artifacts are rank 0's: nothing is copied
            return Path(path)
        stored_name, target = self._artifacts.copy_in(path, name)
        self._jobs.submit(self._artifacts.announce, stored_name, target)
        return target

    def watch(
        self,
        model: Any,
        optimizer: Any = None,
        scheduler: Any = None,
        loss_fn: Any = None,
        dataloader: Any = None,
        *,
        log_params: bool = True,
        example_input: Any = None,
        epochs: int | None = None,
        snapshot_every: str | int | None = None,
        gradients: bool = False,
        log_every: int = 100,
        activations_every: int | None = None,
        activations_modules: Any = None,
    ) -> None:
        """Record what the model and its training set-up are.

        Stored as artifacts under ``model/``: the architecture (``repr`` and a per-module table of
        parameter counts, dtypes and devices), the optimizer's param groups, the scheduler, the
        loss and the data loader, and the source of the model's classes and the functions they
        call. With ``log_params`` the key facts (``optimizer/lr``, ``model/parameters``...) are also
        logged as hyperparameters, without overriding ones you logged yourself.

        ``example_input`` traces the model once (here, on this thread) into a graph for
        TensorBoard (``model/graph.pb``). ``epochs`` with a ``dataloader`` that has a length starts
        :meth:`progress` for ``epochs * len(dataloader)`` steps.

        ``snapshot_every`` ("epoch" or N optimizer steps) takes weight snapshots on a schedule, from
        the initial weights to the final ones; ``gradients=True`` logs per-layer gradient norms and
        update-to-weight ratios every ``log_every`` steps. Both hook the optimizer's step.

        ``activations_every`` (default: ``weights.activations_every``) logs statistics of each
        module's output every N training forward passes (``activations/<module>/<stat>``);
        ``activations_modules`` picks the modules by type or name glob (docs/weights.md).
        """
        self._require_running()
        if not self._role.records_run:  # the model set-up, snapshots and gradients are rank 0's
            return
        setup = training_setup(optimizer, scheduler)  # read now: they change during training
        self._jobs.submit(self._record_setup, model, loss_fn, dataloader, setup, log_params)
        if example_input is not None:
            graph = model_graph(model, example_input)
            if graph is not None:
                self._jobs.submit(self._artifacts.write_bytes, GRAPH_ARTIFACT, graph)
        if epochs is not None and dataloader is not None and hasattr(dataloader, "__len__"):
            self.progress(epochs * len(dataloader))
        if snapshot_every is not None or gradients:
            self._weights_session().watch(model, optimizer, dataloader, snapshot_every, gradients, log_every)
        if activations_every is not None or self.config.weights.activations_every is not None:
            self._weights_session().watch_activations(model, activations_every, activations_modules)

    def progress(self, total_steps: int, description: str | None = None, interval: float = 1.0) -> ProgressReporter:
        """Show a progress bar with ETA (in a terminal) and log throughput and ETA as metrics.

        The bar follows the step counter of ``log_metrics``, so the loop needs no extra call;
        it closes at ``finish()``. Calling it again replaces the previous bar.
        """
        self._require_running()
        if not self._role.records_run:  # rank 0 shows the bar: this one is never started
            return ProgressReporter(total_steps, lambda: self._step, lambda sample, step: None, interval=interval)
        if self._progress is not None:
            self._progress.stop()
        self._progress = ProgressReporter(
            total_steps,
            lambda: self._step,
            lambda sample, step: self._emit_metrics(sample.as_metrics(), step),
            description=description or self.name,
            interval=interval,
        ).start()
        return self._progress

    def flush(self, timeout: float | None = None) -> bool:
        """Return once everything logged so far is durable in the local store (False on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._jobs.wait(timeout):
            return False
        return self._role.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def finish(self, status: str = "completed", timeout: float | None = None) -> None:
        """End the run: flush, give the backends up to ``timeout`` (config: tracking.finish_timeout), record status.

        Calling it again does nothing; logging after it raises.
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, not {status!r}")
        if self._state is not _RUNNING:
            return
        self._state = _FINISHING
        budget = self.config.tracking.finish_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        try:
            if self._monitor is not None:
                self._monitor.stop()
            if not self._role.records_run:  # another rank: close its own journal; rank 0 finishes the run
                self._role.close(status, deadline)
                return
            if self._progress is not None:
                self._progress.stop()
            self._finish_weights()
            self._jobs.wait(min(_CAPTURE_WAIT_S, budget))
            if status in ("failed", "interrupted"):  # not "pruned": an early stop is no failure to explain
                self._failure = self._failure or describe_failure(*sys.exc_info())  # finish() in an except block
                if self._failure is not None:
                    self._queue.append(RecordEvent(UNNUMBERED, time.time(), ERROR, self._failure))
            self._role.close(status, deadline, peak_rss_mb=peak_rss_mb())
        finally:
            self._state = _FINISHED
            self._jobs.shutdown()
            self._lifecycle.stop()

    @property
    def finished(self) -> bool:
        return self._state is _FINISHED

    def __enter__(self) -> ExperimentTracker:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._failure = describe_failure(kind, value, tb)
        self.finish(status_for(kind, value))

    def __repr__(self) -> str:
        if not self._role.records_run:
            return f"ExperimentTracker(following rank 0's run, experiment={self.experiment!r}, state={self._state!r})"
        return f"ExperimentTracker(run_id={self.run_id!r}, experiment={self.experiment!r}, state={self._state!r})"

    # --- internals ----------------------------------------------------------------------------

    def _require_running(self) -> None:
        if self._state is not _RUNNING:
            raise RuntimeError(f"run {self.run_id} is {self._state}: start a new tracker to log more")

    def _record_setup(self, model: Any, loss_fn: Any, dataloader: Any, setup: dict[str, Any], log_params: bool) -> None:
        extracted = record_setup(self._artifacts, model, loss_fn, dataloader, setup)
        if log_params and self._state is not _FINISHED:
            extracted = {k: v for k, v in extracted.items() if k not in self._params}  # yours win
            if extracted:
                self._params.update(extracted)
                self._queue.append(ParamsEvent(UNNUMBERED, time.time(), extracted))

    def _emit_system(self, values: dict[str, float]) -> None:
        if self._state is not _FINISHED:  # the monitor's last sample comes while finishing
            self._queue.append(SystemEvent(UNNUMBERED, time.time(), values))

    def _end_from_lifecycle(self, status: str, failure: dict[str, Any] | None) -> None:
        """Called at exit (status from an uncaught exception, if any) or on SIGTERM ("interrupted")."""
        self._failure = failure or self._failure
        self.finish(status)

    # --- weights -----------------------------------------------------------------------------------

    def snapshot_weights(self, model: Any, step: int | None = None, tag: str | None = None) -> Any:
        """Store the weights of ``model`` (a torch module or state dict, a pytree or dict of NumPy
        arrays, a Keras model) as a snapshot of this run at ``step`` (default: the current step).

        Tensors are stored content-addressed, so unchanged ones cost nothing. The loop pays for a
        copy of the tensors that changed; hashing and writing happen in the background (``flush()``
        waits for them). Returns a SnapshotInfo.
        """
        self._require_running()
        if not self._role.records_run:  # snapshots are rank 0's
            return None
        return self._weights_session().snapshot(model, self._step if step is None else checked_step(step), tag)

    def _weights_session(self) -> Any:
        if self._weights is None:
            from unitrack.weights.session import WeightsSession

            self._weights = WeightsSession(
                self.store.root, self.run_dir, self.config, self._emit_record, self._emit_metrics, self._jobs.submit
            )
        return self._weights

    def _finish_weights(self) -> None:
        """The final snapshot of watched weights, and the plots of ``monitoring.create_plots``."""
        plots = self.config.monitoring.create_plots
        if self._weights is not None or plots:
            from unitrack.weights.session import finish_weights

            settle = (self._jobs.wait, self._role.flush)  # what the plots read: the snapshots, the metrics
            finish_weights(self._weights, plots, settle, self.store, self.run_id, self._artifacts)

    # --- checkpoints ------------------------------------------------------------------------------

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
    ) -> CheckpointInfo | None:
        """Save model, optimizer, scheduler, AMP scaler and RNG state; keyword metrics rank it.

        Written atomically and checksummed, in the background by default (``checkpointing.async_save``).
        Returns None when ``checkpointing.save_frequency`` skips this step (a save marked
        ``is_best`` is never skipped) or when a failed save is only warned about (``on_error: warn``).
        """
        self._require_running()
        return self._role.save_checkpoint(model, epoch, step, optimizer, scheduler, scaler, is_best, extra, metrics)

    def list_checkpoints(self) -> list[CheckpointInfo]:
        """The kept checkpoints, oldest first (after a pending save has finished)."""
        return self._role.checkpoints().kept()

    def get_best_checkpoint(self) -> CheckpointInfo | None:
        """The best kept checkpoint (by ``checkpointing.monitor``, else the last one saved with is_best), or None."""
        return self._role.checkpoints().best()

    def load_checkpoint(
        self, checkpoint: Any, model: Any, optimizer: Any = None, scheduler: Any = None, scaler: Any = None
    ) -> tuple[int, int]:
        """Verify and restore a checkpoint (a CheckpointInfo, a path, a name, "best" or "last"); return (epoch, step).

        RNG states are restored too. "best" and "last" skip, with a warning, checkpoints that fail
        their checksums; an explicit checkpoint that fails raises CheckpointCorruptError.
        """
        return self._role.checkpoints().load(checkpoint, model, optimizer, scheduler, scaler)

    def register_model(
        self, name: str | None = None, checkpoint: Any = "best", aliases: Sequence[str] | None = None
    ) -> CheckpointInfo:
        """Make a checkpoint ("best", "last", a name or a CheckpointInfo) a version of model ``name``
        (default: ``checkpointing.register_model``) in MLflow's Model Registry and a W&B model artifact,
        with ``aliases`` (default: ``checkpointing.register_aliases``) moved onto it. Journalled and
        delivered like everything else: it returns at once."""
        return self._role.checkpoints().register(checkpoint, name, aliases)

    def load_best(self, model: Any, optimizer: Any = None, scheduler: Any = None, scaler: Any = None) -> tuple[int, int]:
        """Restore the best checkpoint that verifies; return (epoch, step)."""
        return self._role.checkpoints().load("best", model, optimizer, scheduler, scaler)

    def _emit_record(self, kind: str, data: Mapping[str, Any]) -> None:
        self._queue.append(RecordEvent(UNNUMBERED, time.time(), kind, data))

    def _emit_metrics(self, values: dict[str, float], step: int) -> None:
        # straight onto the queue: log_metrics would move the user's step counter
        self._queue.append(MetricEvent(UNNUMBERED, time.time(), step, values))


def experiment_tracking(name: str, config: ConfigSource = None, **options: Any) -> ExperimentTracker:
    """``with experiment_tracking("exp", cfg) as tracker:`` — the run ends with the block."""
    return ExperimentTracker(name, config, **options)

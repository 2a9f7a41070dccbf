"""``ExperimentTracker``: the one object a training loop talks to.

Its ``log_*`` calls validate, stamp and enqueue; they never touch the disk, the network or the
GPU. The dispatcher writes the journal and feeds the backends on its own threads. Leaving the
``with`` block (or ``finish()``) records the run's end: ``completed``, or ``failed`` /
``interrupted`` when an exception or Ctrl-C left it; SIGTERM flushes and marks ``interrupted``;
a process that dies without finishing reads as ``crashed``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path
from types import TracebackType
from typing import Any

from unitrack.backends import create_backends
from unitrack.backends.base import Backend, RunInfo
from unitrack.capture.environment import capture_environment
from unitrack.capture.git import capture_git
from unitrack.capture.graph import GRAPH_ARTIFACT, model_graph
from unitrack.capture.model import (
    describe_dataloader,
    describe_loss,
    describe_model,
    describe_optimizer,
    describe_scheduler,
    setup_params,
)
from unitrack.capture.source import model_sources
from unitrack.capture.system import SystemMonitor
from unitrack.checkpoint.registry import CheckpointInfo
from unitrack.checkpoint.resume import resumed_run_json, run_to_resume
from unitrack.commit_env import MESSAGE_ENV, command_from_env, run_id_from_env, tags_from, tags_from_env
from unitrack.config import Config, config_hash, load_config
from unitrack.distributed.ranks import current_rank
from unitrack.distributed.roles import FollowerRole, OwnerRole, Role
from unitrack.events import (
    ERROR,
    UNNUMBERED,
    ArtifactEvent,
    MetricEvent,
    ParamsEvent,
    RecordEvent,
    SystemEvent,
    TagsEvent,
)
from unitrack.failure import describe_failure
from unitrack.hashing import SHA256, digest_path
from unitrack.lifecycle import RunLifecycle, status_for
from unitrack.names import validate_name
from unitrack.params import flatten_params
from unitrack.progress import ProgressReporter, ProgressSample
from unitrack.redact import redact_argv
from unitrack.store.fsio import atomic_write_json, read_json
from unitrack.store.runfile import RunFile
from unitrack.store.runs import RunStore

log = logging.getLogger("unitrack")

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
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        run_name: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
        backends: Sequence[Backend] = (),
        resume: str | None = None,
    ) -> None:
        self._set_identity(name, config, run_name)
        tracking = self.config.tracking

        # hot-path state, read by log_metrics on every call
        self._state = _RUNNING
        self._step = 0
        self._metric_keys: set[str] = set()
        self._params: dict[str, Any] = {}

        self._queue_limit = tracking.queue_size
        self._progress: ProgressReporter | None = None
        self._monitor: SystemMonitor | None = None
        self._weights: Any = None  # unitrack.weights.session.WeightsSession, made on first use
        self._failure: dict[str, Any] | None = None  # the exception that ended the run, for run.json and the backends
        self._lifecycle = RunLifecycle(self._end_from_lifecycle)
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unitrack-capture")
        self._futures: list[Future[Any]] = []
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
        self._paths = (
            self.store.new_run(run_id_from_env()) if resume is None else run_to_resume(self.store, resume, self.experiment)
        )
        self._start = time.time()
        run_tags = {**tags_from(self.config.tags), **tags_from(tags), **tags_from_env()}
        initial = self._initial_run_json(run_tags)
        if resume is not None:
            initial = resumed_run_json(read_json(self._paths.run_json, {}) or {}, initial)
        self._run_file = RunFile(self._paths.run_json, initial)
        self._info_ready = threading.Event()
        owner = OwnerRole(self.config, self.store, self._paths, self._run_file, remotes, self._run_info)
        self._role = owner
        self._queue = owner.queue
        self._submit(self._capture_start)
        owner.start(self.experiment)
        if resume is not None:
            self.resumed_from = owner.checkpoints().rewind()
            if self.resumed_from is not None:
                self._step = self.resumed_from.step + 1
        if run_tags:
            self._queue.append(TagsEvent(UNNUMBERED, self._start, dict(run_tags)))
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

    def _set_identity(self, name: str, config: Any, run_name: str | None) -> None:
        """The experiment, the loaded config and the run name: what every rank's tracker starts from."""
        self.experiment = validate_name(name, "experiment name")
        self.config = load_config(config)
        self.name = validate_name(run_name or self.config.run_name or self.experiment, "run name")

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
            self._raise_not_running()
        if step is None:
            step = self._step
        elif type(step) is not int or step < 0:
            step = _checked_step(step)
        values: dict[str, Any] = {}
        known = self._metric_keys
        for key, value in metrics.items():
            if key not in known:
                _check_metric_key(key, known)
            cls = type(value)
            if cls is float or cls is int:
                values[key] = value
            else:
                _add_metric_value(key, value, values, known)
        queue = self._queue
        if len(queue) >= self._queue_limit and not self._role.make_room():
            return
        queue.append(MetricEvent(UNNUMBERED, time.time(), step, values))
        self._step = step + 1

    def log_hyperparameters(self, params: Any) -> None:
        """Record hyperparameters (a mapping, dataclass, Namespace, pydantic model or DictConfig)."""
        if self._state is not _RUNNING:
            self._raise_not_running()
        if not self._role.records_run:  # parameters are rank 0's
            return
        flat = flatten_params(params)
        if flat:
            self._params.update(flat)
            self._queue.append(ParamsEvent(UNNUMBERED, time.time(), flat))

    log_params = log_hyperparameters

    def set_tags(self, tags: Mapping[str, Any] | Sequence[str]) -> None:
        """Add or change run tags (``{"k": "v"}``, or labels ``["nlp"]``)."""
        if self._state is not _RUNNING:
            self._raise_not_running()
        if not self._role.records_run:  # tags are rank 0's
            return
        values = tags_from(tags)
        if values:
            self._queue.append(TagsEvent(UNNUMBERED, time.time(), values))

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> Path:
        """Copy a file or folder into the run now, and mirror it to the backends; return its stored path.

        The copy is made before returning, so the original may be changed or deleted at once.
        """
        if self._state is not _RUNNING:
            self._raise_not_running()
        if not self._role.records_run:  # artifacts are rank 0's: nothing is copied
            return Path(path)
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"artifact {str(source)!r} does not exist")
        name = _artifact_name(name or source.name)
        target = self._paths.artifacts / name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        self._submit(self._announce_artifact, name, target)
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
        if self._state is not _RUNNING:
            self._raise_not_running()
        if not self._role.records_run:  # the model set-up, snapshots and gradients are rank 0's
            return
        # optimizer and scheduler settings change during training: read them now
        setup: dict[str, Any] = {}
        if optimizer is not None:
            setup["optimizer"] = describe_optimizer(optimizer)
        if scheduler is not None:
            setup["scheduler"] = describe_scheduler(scheduler)
        self._submit(self._record_setup, model, loss_fn, dataloader, setup, log_params)
        if example_input is not None:
            graph = model_graph(model, example_input)
            if graph is not None:
                self._submit(self._store_artifact_bytes, GRAPH_ARTIFACT, graph)
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
        if self._state is not _RUNNING:
            self._raise_not_running()
        if not self._role.records_run:  # rank 0 shows the bar: this one is never started
            return ProgressReporter(total_steps, lambda: self._step, lambda sample, step: None, interval=interval)
        if self._progress is not None:
            self._progress.stop()
        self._progress = ProgressReporter(
            total_steps,
            lambda: self._step,
            self._log_progress,
            description=description or self.name,
            interval=interval,
        ).start()
        return self._progress

    def flush(self, timeout: float | None = None) -> bool:
        """Return once everything logged so far is durable in the local store (False on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._wait_jobs(timeout):
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
            self._wait_jobs(min(_CAPTURE_WAIT_S, budget))
            if status in ("failed", "interrupted"):  # not "pruned": an early stop is no failure to explain
                self._failure = self._failure or describe_failure(*sys.exc_info())  # finish() in an except block
                if self._failure is not None:
                    self._queue.append(RecordEvent(UNNUMBERED, time.time(), ERROR, self._failure))
            states = self._role.close(status, deadline, peak_rss_mb=_peak_rss_mb())
            self._warn_owed(states)
        finally:
            self._state = _FINISHED
            self._jobs.shutdown(wait=False)
            self._lifecycle.stop()

    @property
    def finished(self) -> bool:
        return self._state is _FINISHED

    def __enter__(self) -> ExperimentTracker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._failure = describe_failure(kind, value, tb)
        self.finish(status_for(kind, value))

    def __repr__(self) -> str:
        if not self._role.records_run:
            return f"ExperimentTracker(following rank 0's run, experiment={self.experiment!r}, state={self._state!r})"
        return f"ExperimentTracker(run_id={self.run_id!r}, experiment={self.experiment!r}, state={self._state!r})"

    # --- internals ----------------------------------------------------------------------------

    def _raise_not_running(self) -> None:
        raise RuntimeError(f"run {self.run_id} is {self._state}: start a new tracker to log more")

    def _initial_run_json(self, tags: dict[str, str]) -> dict[str, Any]:
        import psutil

        command = command_from_env() or redact_argv(list(sys.argv))
        return {
            "format": 1,
            "run_id": self._paths.run_id,
            "name": self.name,
            "experiment": self.experiment,
            "status": "running",
            "message": os.environ.get(MESSAGE_ENV) or self.config.description,
            "description": self.config.description,
            "tags": tags,
            "start_time": self._start,
            "end_time": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start_time": psutil.Process(os.getpid()).create_time(),
            "command": command,
            "cwd": os.getcwd(),
            "config_hash": config_hash(self.config),
            "config": self.config.redacted(),
            "git": {},
            "backends": {},
        }

    def _run_info(self) -> RunInfo:
        """What backends are told when they open the run (after the git capture, waited for briefly)."""
        self._info_ready.wait(_CAPTURE_WAIT_S)
        return RunInfo.from_run_json(self.run_dir, self._run_file.snapshot())

    def _submit(self, job: Any, *args: Any) -> None:
        self._futures = [f for f in self._futures if not f.done()]
        self._futures.append(self._jobs.submit(self._guarded, job, *args))

    @staticmethod
    def _guarded(job: Any, *args: Any) -> None:
        try:
            job(*args)
        except Exception as exc:  # a capture problem is worth a warning, never a failed run
            log.warning("unitrack: %s failed: %s: %s", getattr(job, "__name__", job), type(exc).__name__, exc)

    def _wait_jobs(self, timeout: float | None) -> bool:
        pending = [f for f in self._futures if not f.done()]
        if not pending:
            return True
        _, not_done = wait_futures(pending, timeout)
        return not not_done

    def _capture_start(self) -> None:
        capture = self.config.capture
        try:
            if capture.git:
                git, patch = capture_git(ignore=self.store.root)
                self._run_file.update(git=git)
                if patch:
                    self._store_artifact_text("git.patch", patch)
        finally:
            self._info_ready.set()
        if capture.environment:
            environment = capture_environment(include_packages=capture.packages)
            atomic_write_json(self._paths.environment_json, environment)

    def _record_setup(
        self, model: Any, loss_fn: Any, dataloader: Any, setup: dict[str, Any], log_params: bool
    ) -> None:
        setup["model"] = describe_model(model)
        if loss_fn is not None:
            setup["loss"] = describe_loss(loss_fn)
        if dataloader is not None:
            setup["data"] = describe_dataloader(dataloader)
        self._store_artifact_text("model/architecture.txt", setup["model"]["repr"] + "\n")
        self._store_artifact_text("model/summary.json", json.dumps(setup, indent=2, sort_keys=True) + "\n")
        sources = model_sources(model)
        self._store_artifact_text("model/sources.json", json.dumps(sources, indent=2, sort_keys=True) + "\n")
        if log_params and self._state is not _FINISHED:
            extracted = {k: v for k, v in flatten_params(setup_params(setup)).items() if k not in self._params}
            if extracted:
                self._params.update(extracted)
                self._queue.append(ParamsEvent(UNNUMBERED, time.time(), extracted))

    def _store_artifact_text(self, name: str, text: str) -> None:
        self._store_artifact_bytes(name, text.encode("utf-8"))

    def _store_artifact_bytes(self, name: str, data: bytes) -> None:
        target = self._paths.artifacts / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self._announce_artifact(name, target)

    def _announce_artifact(self, name: str, target: Path) -> None:
        size, digest = digest_path(target, SHA256)  # the artifact event's "sha256": kept, as backends read it
        relative = target.relative_to(self.run_dir).as_posix()
        self._queue.append(ArtifactEvent(UNNUMBERED, time.time(), name, relative, size, digest))

    def _log_progress(self, sample: ProgressSample, step: int) -> None:
        # straight onto the queue: log_metrics would move the user's step counter
        self._queue.append(MetricEvent(UNNUMBERED, time.time(), step, sample.as_metrics()))

    def _emit_system(self, values: dict[str, float]) -> None:
        if self._state is not _FINISHED:  # the monitor's last sample comes while finishing
            self._queue.append(SystemEvent(UNNUMBERED, time.time(), values))

    def _warn_owed(self, states: dict[str, dict[str, Any]]) -> None:
        for backend, state in states.items():
            if state.get("owed"):
                log.warning(
                    "unitrack: backend %r still owes %d event(s) of run %s; `unitrack sync %s` delivers them",
                    backend,
                    state["owed"],
                    self.run_id,
                    self.run_id,
                )
            if state.get("skipped_events"):
                log.warning(
                    "unitrack: backend %r refused %d event(s) of run %s for good: it is not in sync "
                    "(they are kept in the local store)",
                    backend,
                    state["skipped_events"],
                    self.run_id,
                )

    def _end_from_lifecycle(self, status: str, failure: dict[str, Any] | None) -> None:
        """Called at exit (status from an uncaught exception, if any) or on SIGTERM ("interrupted")."""
        if failure is not None:
            self._failure = failure
        self.finish(status)

    # --- weights -----------------------------------------------------------------------------------

    def snapshot_weights(self, model: Any, step: int | None = None, tag: str | None = None) -> Any:
        """Store the weights of ``model`` (a torch module or state dict, a pytree or dict of NumPy
        arrays, a Keras model) as a snapshot of this run at ``step`` (default: the current step).

        Tensors are stored content-addressed, so unchanged ones cost nothing. The loop pays for a
        copy of the tensors that changed; hashing and writing happen in the background (``flush()``
        waits for them). Returns a SnapshotInfo.
        """
        if self._state is not _RUNNING:
            self._raise_not_running()
        if not self._role.records_run:  # snapshots are rank 0's
            return None
        return self._weights_session().snapshot(model, self._step if step is None else _checked_step(step), tag)

    def _weights_session(self) -> Any:
        if self._weights is None:
            from unitrack.weights.session import WeightsSession

            self._weights = WeightsSession(
                self.store.root, self.run_dir, self.config, self._emit_record, self._emit_metrics, self._submit
            )
        return self._weights

    def _finish_weights(self) -> None:
        """Final snapshot of watched weights, and the plots of ``monitoring.create_plots``."""
        try:
            if self._weights is not None:
                self._weights.close()
            if self.config.monitoring.create_plots:
                from unitrack.weights.session import make_finish_plots

                self._wait_jobs(_CAPTURE_WAIT_S)  # snapshots are written on the job thread
                self._role.flush(_CAPTURE_WAIT_S)
                for name, path in make_finish_plots(self.store, self.run_id, self._paths.artifacts):
                    self._announce_artifact(name, path)
        except Exception as exc:  # plots and snapshots are worth a warning, never a failed finish
            log.warning("unitrack: weights at finish failed: %s: %s", type(exc).__name__, exc)

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
        if self._state is not _RUNNING:
            self._raise_not_running()
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


def experiment_tracking(
    name: str,
    config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    **options: Any,
) -> ExperimentTracker:
    """``with experiment_tracking("exp", cfg) as tracker:`` — the run ends with the block."""
    return ExperimentTracker(name, config, **options)


# --- validation helpers of the hot path (only reached on the first use of a key, or a slow value) ---


def _check_metric_key(key: Any, known: set[str]) -> None:
    if not isinstance(key, str):
        raise TypeError(f"metric names must be strings, got {key!r} ({type(key).__name__})")
    if not key or not key.strip():
        raise ValueError("metric names must not be empty")
    known.add(key)


def _checked_step(step: Any) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise TypeError(f"step must be an integer, got {step!r} ({type(step).__name__})")
    value = step.__index__()
    if value < 0:
        raise ValueError(f"step must not be negative, got {value}")
    return value


def _add_metric_value(key: str, value: Any, values: dict[str, Any], known: set[str]) -> None:
    """The slow path of ``log_metrics``: nested dicts, bools, NumPy and torch values, errors."""
    if isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            if not isinstance(sub_key, str):
                raise TypeError(f"metric names must be strings, got {sub_key!r} under {key!r}")
            name = f"{key}/{sub_key}"
            if name not in known:
                _check_metric_key(name, known)
            if type(sub_value) is float or type(sub_value) is int:
                values[name] = sub_value
            else:
                _add_metric_value(name, sub_value, values, known)
        return
    if isinstance(value, bool):
        values[key] = int(value)
        return
    if isinstance(value, (str, bytes)):
        raise TypeError(f"metric {key!r} is text ({value!r}); metrics must be numbers — log text with set_tags")
    if value is None:
        raise TypeError(f"metric {key!r} is None; metrics must be numbers")
    module = type(value).__module__.split(".")[0]
    if module in ("torch", "numpy", "jax", "jaxlib"):
        size = value.numel() if callable(getattr(value, "numel", None)) else getattr(value, "size", 1)
        if size != 1:
            shape = tuple(getattr(value, "shape", ()))
            raise ValueError(f"metric {key!r} has {size} elements (shape {shape}); log one number per metric")
        dtype = str(getattr(value, "dtype", ""))
        if "complex" in dtype or not any(t in dtype for t in ("float", "int", "bool", "half")):
            raise TypeError(f"metric {key!r} has dtype {dtype}; metrics must be real numbers")
        values[key] = value  # converted to a float by the writer thread
        return
    try:
        values[key] = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {key!r} is a {type(value).__name__}; metrics must be numbers") from None


# --- small helpers -------------------------------------------------------------------------------


def _artifact_name(name: str) -> str:
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or "\x00" in name:
        raise ValueError(f"artifact name {name!r} must be a relative path inside the run")
    return Path(*parts).as_posix()


def _peak_rss_mb() -> float | None:
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if sys.platform != "darwin" else peak / 2**20
    except (ImportError, OSError):
        return None

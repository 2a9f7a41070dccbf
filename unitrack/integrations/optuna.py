"""Optuna studies as experiments, trials as runs: per-step curves, pruning, parallel workers.

Optuna's own MLflow and W&B callbacks log one value per trial and break with ``n_jobs > 1``.
Here each trial is a unitrack run of its own (the trial's params, its full curves, a final status
including ``pruned``), the monitored metric is reported to the trial as it is logged so Optuna's
pruners work, and the study (direction, sampler, pruner, best trial) is recorded in the store and
kept current as trials finish::

    cb = UnitrackOptunaCallback("sweep", cfg, monitor="val/loss")
    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        with cb.track(trial) as tracker:
            for epoch in range(epochs):
                ...
                tracker.log_metrics({"val/loss": v}, step=epoch)   # may raise optuna.TrialPruned
            return v
    study.optimize(objective, n_trials=50, callbacks=[cb])

Threads (``n_jobs``) and processes sharing an RDB storage each get one run per trial: a run is
keyed by the trial's storage id, never by anything two workers could share.
"""

from __future__ import annotations

import atexit
import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from unitrack.config import ConfigSource, load_config
from unitrack.integrations.studies import StudyRecord, trial_entry
from unitrack.tracker import ExperimentTracker

if TYPE_CHECKING:
    import optuna

# optuna TrialState name -> the run's final status
_FINAL_STATUS = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed"}
VALUE_KEY = "optuna/value"


class TrialTracker:
    """The run of one trial: an :class:`ExperimentTracker` whose ``log_metrics`` also reports to Optuna.

    Every other member is the tracker's own (a misspelt name raises AttributeError as usual).
    """

    def __init__(self, tracker: ExperimentTracker, trial: optuna.Trial, monitor: str | None) -> None:
        self.tracker = tracker
        self.trial = trial
        self._monitor = monitor

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log as the tracker does; the monitored value is reported to the trial, which may prune it.

        Raises ``optuna.TrialPruned`` (after the point is logged) when the study's pruner says so.
        """
        step = self.tracker.step if step is None else step
        self.tracker.log_metrics(metrics, step=step)
        if self._monitor is None or self._monitor not in metrics:
            return
        value = float(metrics[self._monitor])
        if not math.isfinite(value):
            return  # Optuna refuses to report NaN/inf; the point is in the run all the same
        self.trial.report(value, step)
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned at step {step}: {self._monitor}={value:g}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tracker, name)

    def __repr__(self) -> str:
        return f"TrialTracker(trial={self.trial.number}, run_id={self.tracker.run_id!r})"


class UnitrackOptunaCallback:
    """One unitrack run per Optuna trial, and the study recorded beside the runs.

    ``experiment`` names the runs' experiment; ``config`` is anything ``load_config`` takes (its
    backends receive every trial's run). ``monitor`` is the metric reported to the trial for
    pruning; the direction is the study's. Pass the callback to ``study.optimize(callbacks=[cb])``:
    it records each trial's final value and state and closes runs the objective left open.
    """

    def __init__(
        self,
        experiment: str,
        config: ConfigSource = None,
        *,
        monitor: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._experiment = experiment
        self._config = load_config(config)
        self.monitor = monitor
        self._tags = dict(tags or {})
        self._lock = threading.Lock()
        self._open: dict[int, tuple[TrialTracker, bool]] = {}  # trial storage id -> (run, awaiting the result)
        self._studies: dict[str, StudyRecord] = {}
        atexit.register(self.close)

    # --- starting a trial's run ---------------------------------------------------------------

    def start(self, trial: optuna.Trial) -> TrialTracker:
        """Start the trial's run (without a ``with`` block): the callback closes it when the trial ends."""
        study = trial.study
        self._close_told(study)
        record = self._record(study)
        tags = {
            **self._tags,
            "optuna.study": study.study_name,
            "optuna.trial": str(trial.number),
            "optuna.direction": record.direction,
        }
        tracker = ExperimentTracker(
            self._experiment, self._config, run_name=f"{study.study_name}-trial-{trial.number}", tags=tags
        )
        tracker.log_hyperparameters({**trial.params, "optuna/trial": trial.number})
        run = TrialTracker(tracker, trial, self.monitor)
        with self._lock:
            self._open[_trial_id(trial)] = (run, False)
        record.update({trial.number: trial_entry(tracker.run_id, "running", None)})
        return run

    @contextmanager
    def track(self, trial: optuna.Trial) -> Iterator[TrialTracker]:
        """The trial's run for a ``with`` block: pruned or failed when the block raises.

        A block that ends normally leaves the run open for the trial's result (its value and
        state), which the callback records when Optuna reports the trial finished.
        """
        run = self.start(trial)
        try:
            yield run
        except BaseException as exc:
            # finished here, in the except block: a failed run records this exception as its cause
            self._end(trial.study, trial.number, _trial_id(trial), _status_of(exc), None)
            raise
        with self._lock:
            self._open[_trial_id(trial)] = (run, True)

    # --- the trial's end ----------------------------------------------------------------------

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna calls this once a trial has finished: record its result and close its run."""
        self._end(study, trial.number, _trial_id(trial), _FINAL_STATUS.get(trial.state.name, "failed"), _single_value(trial))

    def close(self) -> None:
        """Close every run still open: with its trial's result when the storage has it."""
        with self._lock:
            pending = list(self._open.items())
        for trial_id, (run, _) in pending:
            frozen = _stored_trial(run.trial)
            if frozen is not None and frozen.state.is_finished():
                status, value = _FINAL_STATUS.get(frozen.state.name, "failed"), _single_value(frozen)
            else:  # the process ends with the trial unfinished
                status, value = "interrupted", None
            self._end(run.trial.study, run.trial.number, trial_id, status, value)

    def _close_told(self, study: optuna.Study) -> None:
        """Runs whose trials were finished by ``study.tell`` (ask-and-tell: no callback is called)."""
        with self._lock:
            waiting = [(tid, run) for tid, (run, done) in self._open.items() if done and run.trial.study is study]
        for _, run in waiting:
            frozen = _stored_trial(run.trial)
            if frozen is not None and frozen.state.is_finished():
                self(study, frozen)

    def _end(self, study: optuna.Study, number: int, trial_id: int, status: str, value: float | None) -> None:
        with self._lock:
            entry = self._open.pop(trial_id, None)
        record = self._record(study)
        run_id = None
        if entry is not None:
            run = entry[0]
            run_id = run.tracker.run_id
            if not run.tracker.finished:
                new_params = {k: v for k, v in run.trial.params.items() if f"{k}" not in run.tracker.params}
                if new_params:  # suggested inside the block, after the run started
                    run.tracker.log_hyperparameters(new_params)
                if value is not None and status == "completed":
                    run.tracker.log_metrics({VALUE_KEY: value}, step=max(run.tracker.step - 1, 0))
                run.tracker.finish(status)
        record.update({number: trial_entry(run_id, status, value)}, study=study)

    def _record(self, study: optuna.Study) -> StudyRecord:
        with self._lock:
            record = self._studies.get(study.study_name)
            if record is None:
                record = StudyRecord.for_study(self._config.store_dir, study)
                self._studies[study.study_name] = record
            return record


def _trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The trial's id in its storage: unique across threads and processes sharing the storage."""
    return int(trial._trial_id)


def _stored_trial(trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
    try:
        return trial.study._storage.get_trial(_trial_id(trial))
    except Exception:  # a storage that went away: close the run as its own state says
        return None


def _single_value(trial: optuna.trial.FrozenTrial) -> float | None:
    """The trial's objective value (None for a multi-objective or unfinished trial)."""
    return trial.values[0] if trial.values is not None and len(trial.values) == 1 else None


def _status_of(exc: BaseException) -> str:
    import optuna

    if isinstance(exc, optuna.TrialPruned):
        return "pruned"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "failed"

"""PyTorch Lightning (2.x): ``Trainer(logger=UnitrackLogger(...), callbacks=[UnitrackCheckpoint(...)])``.

``UnitrackLogger`` implements Lightning's ``Logger`` interface, so everything Lightning logs
(``self.log(...)``, ``save_hyperparameters()``, the graph) goes through one unitrack run to the
configured backends. ``UnitrackCheckpoint`` routes checkpoints into the run's registry
(checksummed safetensors, best/last, retention) and takes weight snapshots on its schedule.
Needs the ``lightning`` extra.
"""

from __future__ import annotations

import math
from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger

from unitrack.config import ConfigSource
from unitrack.integrations._owner import TrackerOwner, check_schedules
from unitrack.tracker import ExperimentTracker

# Lightning's finalize() statuses; "success" comes after fit, validate and test alike
_FAILED = "failed"


class UnitrackLogger(Logger):
    """A Lightning logger that records into one unitrack run.

    Give a ``tracker`` you own, or let the logger create the run on first use from ``name``,
    ``config``, ``run_name`` and ``tags`` (in the process that trains, as Lightning's loggers do).
    A run the logger created is marked ``failed`` when Lightning reports a failure; after a
    successful ``fit`` it is only flushed, so ``trainer.test`` can log into the same run, and it
    completes at :meth:`finish` or when the process exits.
    """

    def __init__(
        self,
        name: str = "lightning",
        config: ConfigSource = None,
        *,
        tracker: ExperimentTracker | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self._owner = TrackerOwner(tracker, name, config, run_name, tags)
        self._name = tracker.experiment if tracker is not None else name

    @property
    def experiment(self) -> ExperimentTracker:
        """The unitrack run (created on first access)."""
        return self._owner.tracker

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self.experiment.run_id

    @property
    def save_dir(self) -> str | None:
        """None: Lightning's own files stay under the Trainer's ``default_root_dir``."""
        return None

    @property
    def log_dir(self) -> str:
        """The run's folder in the local store."""
        return str(self.experiment.run_dir)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.experiment.log_metrics(metrics, step=step)

    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        self.experiment.log_hyperparameters(params)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        self.experiment.watch(model, log_params=False, example_input=input_array)

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Lightning's own ``ModelCheckpoint`` files are named in the run's tags (use UnitrackCheckpoint to register them)."""
        tags = {
            "lightning/best_model_path": checkpoint_callback.best_model_path,
            "lightning/last_model_path": checkpoint_callback.last_model_path,
        }
        self.experiment.set_tags({key: value for key, value in tags.items() if value})

    def save(self) -> None:
        if self._owner.created:
            self.experiment.flush()

    def finalize(self, status: str) -> None:
        if not self._owner.created:
            return
        if status == _FAILED:
            self._owner.finish("failed")
        elif not self.experiment.finished:
            self.experiment.flush()

    def finish(self, status: str = "completed") -> None:
        """Finish the run now, if this logger created it."""
        self._owner.finish(status)


class UnitrackCheckpoint(Callback):
    """Saves checkpoints into the unitrack registry and takes weight snapshots, once per N epochs.

    ``monitor`` names a logged metric (``"val/loss"``) whose best value (``mode`` min or max; NaN
    counts as worst) marks the best checkpoint. The run is the ``tracker`` given, else the one of
    the Trainer's :class:`UnitrackLogger`. On distributed runs only rank 0 writes (the tracker of
    any other rank does nothing).
    """

    def __init__(
        self,
        monitor: str | None = None,
        mode: str = "min",
        every_n_epochs: int | None = 1,
        snapshot_every_n_epochs: int | None = None,
        *,
        tracker: ExperimentTracker | None = None,
        save_optimizer: bool = True,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
        check_schedules(every_n_epochs=every_n_epochs, snapshot_every_n_epochs=snapshot_every_n_epochs)
        self.monitor = monitor
        self.mode = mode
        self.every_n_epochs = every_n_epochs
        self.snapshot_every_n_epochs = snapshot_every_n_epochs
        self.save_optimizer = save_optimizer
        self._tracker = tracker
        self.best_score: float | None = None

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning runs the epoch's validation before this hook, so val metrics are here
        epoch, step = trainer.current_epoch, trainer.global_step
        tracker = self._resolve_tracker(trainer)
        if _due(epoch, self.snapshot_every_n_epochs):
            tracker.snapshot_weights(pl_module, step=step, tag=f"epoch-{epoch}")
        if _due(epoch, self.every_n_epochs):
            metrics = _scalar_metrics(trainer.callback_metrics)
            is_best = self._is_best(metrics)
            tracker.save_checkpoint(
                model=pl_module,
                epoch=epoch,
                step=step,
                optimizer=(trainer.optimizers[0] if trainer.optimizers else None) if self.save_optimizer else None,
                scheduler=_first_scheduler(trainer) if self.save_optimizer else None,
                is_best=is_best,
                **metrics,
            )

    def _resolve_tracker(self, trainer: Trainer) -> ExperimentTracker:
        if self._tracker is None:
            loggers = [logger for logger in trainer.loggers if isinstance(logger, UnitrackLogger)]
            if not loggers:
                raise RuntimeError(
                    "UnitrackCheckpoint needs a run: pass tracker=..., or add a UnitrackLogger to the Trainer's loggers"
                )
            self._tracker = loggers[0].experiment
        return self._tracker

    def _is_best(self, metrics: Mapping[str, float]) -> bool | None:
        if self.monitor is None:
            return None
        if self.monitor not in metrics:
            raise KeyError(
                f"UnitrackCheckpoint(monitor={self.monitor!r}): no such logged metric; logged: {sorted(metrics)}"
            )
        score = metrics[self.monitor]
        if math.isnan(score):
            return False
        better = self.best_score is None or (score < self.best_score if self.mode == "min" else score > self.best_score)
        if better:
            self.best_score = score
        return better

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict.get("best_score")


def _due(epoch: int, every: int | None) -> bool:
    return every is not None and (epoch + 1) % every == 0


def _scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Lightning's callback metrics as floats (``epoch`` / ``step`` are the checkpoint's own fields)."""
    scalars: dict[str, float] = {}
    for key, value in metrics.items():
        if key in ("epoch", "step"):
            continue
        numel = getattr(value, "numel", None)
        if numel is not None and numel() != 1:
            continue
        scalars[key] = float(value)
    return scalars


def _first_scheduler(trainer: Trainer) -> Any:
    configs = trainer.lr_scheduler_configs
    return configs[0].scheduler if configs else None

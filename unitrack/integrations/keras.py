"""Keras 3: ``model.fit(..., callbacks=[UnitrackKerasCallback("my-experiment")])``.

Keras picks its backend when it is first imported, from ``KERAS_BACKEND``. unitrack is a
PyTorch tool, so importing this module before Keras sets ``KERAS_BACKEND=torch`` unless you
chose one; set it yourself (``export KERAS_BACKEND=torch``, or ``os.environ`` before any
``import keras``) when Keras is imported first. Metrics are plain numbers on every backend, and
snapshots read the weights through Keras, so the callback itself works on any backend.
Needs the ``keras`` extra.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "torch")

import keras

from unitrack.config import ConfigSource
from unitrack.integrations._owner import TrackerOwner, check_schedules
from unitrack.tracker import ExperimentTracker


class UnitrackKerasCallback(keras.callbacks.Callback):
    """Logs ``fit``'s metrics per batch (``train/...``) and per epoch (``epoch/...``), its settings
    as hyperparameters, and weight snapshots every ``snapshot_every_n_epochs`` epochs.

    Steps count batches across epochs, so per-batch curves of successive epochs continue each
    other. Give a ``tracker`` you own, or let the callback create the run when training begins
    and finish it when training ends (``failed`` if ``fit`` raised).
    """

    def __init__(
        self,
        name: str = "keras",
        config: ConfigSource = None,
        *,
        tracker: ExperimentTracker | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
        log_every_n_batches: int | None = 1,
        snapshot_every_n_epochs: int | None = None,
    ) -> None:
        super().__init__()
        check_schedules(log_every_n_batches=log_every_n_batches, snapshot_every_n_epochs=snapshot_every_n_epochs)
        self._owner = TrackerOwner(tracker, name, config, run_name, tags)
        self.log_every_n_batches = log_every_n_batches
        self.snapshot_every_n_epochs = snapshot_every_n_epochs
        self._step = 0

    @property
    def tracker(self) -> ExperimentTracker:
        """The unitrack run (created on first access)."""
        return self._owner.tracker

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        params: dict[str, Any] = {"fit": dict(self.params or {})}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            params["optimizer"] = {"name": type(optimizer).__name__, **_plain(optimizer.get_config())}
        params["model/parameters"] = int(self.model.count_params())
        self.tracker.log_hyperparameters(params)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        every = self.log_every_n_batches
        if logs and every is not None and self._step % every == 0:
            self.tracker.log_metrics({f"train/{key}": value for key, value in logs.items()}, step=self._step)
        self._step += 1

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if logs:
            self.tracker.log_metrics({**{f"epoch/{k}": v for k, v in logs.items()}, "epoch": epoch}, step=self._step)
        every = self.snapshot_every_n_epochs
        if every is not None and (epoch + 1) % every == 0:
            self.tracker.snapshot_weights(self.model, step=self._step, tag=f"epoch-{epoch}")

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._owner.finish("completed")

    def finish(self, status: str = "completed") -> None:
        """Finish the run now (e.g. ``"failed"`` after ``fit`` raised), if this callback created it."""
        self._owner.finish(status)


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """An optimizer config with Keras objects (schedules...) named instead of nested."""
    return {key: value if isinstance(value, (int, float, str, bool, type(None))) else repr(value) for key, value in config.items()}

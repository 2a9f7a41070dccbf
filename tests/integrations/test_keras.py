"""A real (tiny) Keras 3 fit on the torch backend, recorded by UnitrackKerasCallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import QUIET, journal, metric_points
from tests.integrations.tensorboard_reader import tensorboard_scalars, with_tensorboard
from unitrack.readers import read_run
from unitrack.store.runs import RunStore

# imported before keras: the integration chooses the torch backend
keras_integration = pytest.importorskip("unitrack.integrations.keras")
UnitrackKerasCallback = keras_integration.UnitrackKerasCallback

import keras  # noqa: E402


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    return model


def data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    return x, x.sum(1, keepdims=True)


def test_fit_logs_batches_epochs_params_and_snapshots(tmp_path: Path, store_dir: Path) -> None:
    assert keras.backend.backend() == "torch"
    callback = UnitrackKerasCallback("keras-test", with_tensorboard(QUIET, tmp_path / "tb"), snapshot_every_n_epochs=1)
    x, y = data()
    tiny_model().fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0, callbacks=[callback])

    run_dir = callback.tracker.run_dir
    assert callback.tracker.finished
    record = read_run(callback.tracker.run_id, RunStore(store_dir)).record
    assert record["status"] == "completed"
    params = json.loads((run_dir / "params.json").read_text())
    assert params["fit/epochs"] == 2 and params["optimizer/learning_rate"] == pytest.approx(0.05)
    assert params["model/parameters"] == 4 * 8 + 8 + 8 + 1
    assert [step for step, _ in metric_points(run_dir, "train/loss")] == list(range(6))  # 3 batches x 2 epochs
    epoch_losses = metric_points(run_dir, "epoch/val_loss")
    assert [step for step, _ in epoch_losses] == [3, 6]
    snapshots = [e for e in journal(run_dir) if e["kind"] == "snapshot"]
    assert [s["tag"] for s in snapshots] == ["epoch-0", "epoch-1"]
    mirrored = tensorboard_scalars(tmp_path / "tb")
    assert mirrored["epoch/val_loss"] == [(step, pytest.approx(value, rel=1e-6)) for step, value in epoch_losses]


def test_a_tracker_you_pass_is_left_open(store_dir: Path) -> None:
    import unitrack as ut

    with ut.experiment_tracking("mine", QUIET) as tracker:
        x, y = data()
        tiny_model().fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[UnitrackKerasCallback(tracker=tracker)])
        assert not tracker.finished
        tracker.log_metrics({"test/mae": 0.1})
    assert read_run(tracker.run_id, RunStore(store_dir)).record["metrics"]["test/mae"] == 0.1

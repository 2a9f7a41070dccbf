"""What the plots draw for the documented loop: no zigzag across the steps' restarts, no empty
panels, one heatmap column per snapshot that moved, each labelled once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from unitrack.weights import plots
from unitrack.weights.trajectory import RunWeights

EPOCHS, BATCHES = 3, 20


def documented_history() -> dict[str, list[dict[str, Any]]]:
    """train/loss per batch at step = batch index (restarting every epoch), val/loss at each epoch's last step."""
    train, valid, clock = [], [], 0.0
    for epoch in range(EPOCHS):
        for step in range(BATCHES):
            clock += 1.0
            train.append({"step": step, "time": clock, "value": 1.0 / (epoch * BATCHES + step + 1)})
        clock += 0.5
        valid.append({"step": BATCHES - 1, "time": clock, "value": 1.5 / (epoch + 1)})
    return {"train/loss": train, "val/loss": valid}


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    drawn: list[Any] = []

    def keep(figure: Any, out_dir: Path, name: str) -> Path:
        drawn.append(figure)
        return out_dir / f"{name}.png"

    monkeypatch.setattr(plots, "_save", keep)
    return drawn


def test_steps_that_restart_every_epoch_are_drawn_in_the_logged_order(figures: list[Any], tmp_path: Path) -> None:
    history = documented_history()
    xs, went_back = plots.unrolled_steps(history)
    assert went_back and xs["train/loss"] == list(range(EPOCHS * BATCHES))
    assert xs["val/loss"] == [BATCHES * (epoch + 1) - 1 for epoch in range(EPOCHS)]  # each at its epoch's end
    plots.learning_curves(RunWeights("r", metric_history=history), tmp_path)
    (figure,) = figures
    loss_axis = figure.axes[0]
    for line in loss_axis.get_lines():
        x = np.asarray(line.get_xdata())
        assert np.all(np.diff(x) > 0), f"{line.get_label()} goes back on the x-axis (a zigzag)"


def test_panels_without_their_metrics_are_left_out(figures: list[Any], tmp_path: Path) -> None:
    only_train = {"train/loss": documented_history()["train/loss"]}
    plots.learning_curves(RunWeights("r", metric_history=only_train), tmp_path)
    plots.learning_curves(RunWeights("r", metric_history=documented_history()), tmp_path)
    titles = [[axis.get_title() for axis in figure.axes] for figure in figures]
    assert titles[0] == ["Loss (log scale)"]
    assert titles[1] == ["Loss (log scale)", "Overfitting gap (validation − train loss)"]


def test_the_layer_heatmap_has_one_labelled_column_per_snapshot_that_moved(figures: list[Any], tmp_path: Path) -> None:
    nan = float("nan")
    # each epoch's end: a snapshot, then a checkpoint of the same weights (no change), all at step 19
    data = RunWeights(
        "r",
        steps=[0, 19, 19, 19, 19],
        points=["init", "epoch-0", "epoch0000-step00000019", "epoch-1", "epoch0001-step00000019"],
        layers=["0.weight", "0.bias"],
        step_change={"0.weight": [nan, 0.5, 0.0, 0.2, 0.0], "0.bias": [nan, 0.1, 0.0, 0.05, 0.0]},
    )
    plots.layer_heatmap(data, tmp_path)
    (figure,) = figures
    axis = figure.axes[0]
    labels = [tick.get_text() for tick in axis.get_xticklabels()]
    assert labels == ["epoch-0", "epoch-1"]  # the step alone (19) would repeat
    image = np.asarray(axis.get_images()[0].get_array(), dtype=float)
    assert image.shape == (2, 2) and not np.isnan(image).all(axis=0).any()  # no blank column

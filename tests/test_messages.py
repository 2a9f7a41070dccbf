"""Messages that say what is true and what to do: no checkpoint marked best, a delta of one snapshot,
`show` of a backend's run without placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import unitrack as ut
from tests.conftest import quiet_config
from unitrack.checkpoint.errors import CheckpointNotFoundError
from unitrack.cli.app import app


def test_load_best_without_a_checkpoint_marked_best_says_so_and_how_to_mark_one() -> None:
    model = torch.nn.Linear(2, 2)
    with ut.experiment_tracking("exp", quiet_config(checkpointing={"async_save": False})) as tracker:
        tracker.save_checkpoint(model, epoch=0, step=10)
        tracker.save_checkpoint(model, epoch=1, step=20)
        with pytest.raises(CheckpointNotFoundError) as raised:
            tracker.load_best(model)
        assert tracker.load_checkpoint("last", model) == (1, 20)
    message = str(raised.value)
    assert "none of the 2 checkpoint(s)" in message and "is marked best" in message
    assert "is_best=True" in message and "checkpointing.monitor" in message
    assert "intact" not in message  # nothing is damaged


def test_load_best_before_any_save_says_none_was_saved() -> None:
    with ut.experiment_tracking("exp", quiet_config()) as tracker, pytest.raises(CheckpointNotFoundError, match="no checkpoint has been saved"):
        tracker.load_best(torch.nn.Linear(2, 2))


def test_delta_of_a_run_with_one_snapshot_says_there_is_nothing_to_compare() -> None:
    model = torch.nn.Linear(3, 2)
    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        tracker.snapshot_weights(model, step=0, tag="init")
    result = CliRunner().invoke(app, ["delta", tracker.run_id])
    assert result.exit_code == 1 and result.stdout == ""  # no table of zeros
    assert "has only one set of weights" in result.stderr and "snapshot" in result.stderr
    assert f"unitrack delta {tracker.run_id} OTHER_RUN" in result.stderr
    assert "snapshot_every" in result.stderr


def test_show_of_a_backends_run_leaves_out_what_the_backend_does_not_know(tmp_path: Path) -> None:
    config = quiet_config(tracking={"use_tensorboard": True, "tensorboard_log_dir": str(tmp_path / "tb")})
    with ut.experiment_tracking("tbshow", config) as tracker:
        tracker.log_metrics({"loss": 0.5}, step=0)
    shown = CliRunner().invoke(app, ["show", f"tb:{tmp_path / 'tb'}#tbshow_{tracker.run_id}"])
    assert shown.exit_code == 0, shown.output
    assert "loss" in shown.stdout
    assert "None" not in shown.stdout and "pid" not in shown.stdout  # no 'host None pid None'

"""Resuming a run: the same next losses as an uninterrupted run, superseded steps, killed saves."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

import unitrack as ut
from tests.checkpoint_helpers import config, make_model, train_step
from tests.conftest import journal, run_script
from unitrack.readers import read_run
from unitrack.store.runs import RunStore

EPOCHS, STEPS = 5, 4


def _train(tracker: ut.ExperimentTracker, model, optimizer, epochs: range) -> list[float]:  # type: ignore[no-untyped-def]
    losses = []
    for epoch in epochs:
        for i in range(STEPS):
            step = epoch * STEPS + i
            loss = train_step(model, optimizer)
            tracker.log_metrics({"loss": loss}, step=step)
            losses.append(loss)
        tracker.save_checkpoint(model, epoch, step, optimizer, loss=loss)
    return losses


def test_a_resumed_run_continues_with_the_same_losses_as_an_uninterrupted_one(store_dir: Path) -> None:
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with ut.experiment_tracking("reference", config()) as tracker:
        reference = _train(tracker, model, optimizer, range(EPOCHS))

    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    tracker = ut.experiment_tracking("exact", config())
    _train(tracker, model, optimizer, range(2))
    for step in (8, 9):  # logged after the last checkpoint, then the process "dies"
        tracker.log_metrics({"loss": 100.0 + step}, step=step)
    tracker.finish("interrupted")

    model = make_model(seed=7)  # a different start: everything must come from the checkpoint
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with ut.experiment_tracking("exact", config(), resume="last") as resumed:
        assert resumed.run_id == tracker.run_id
        assert resumed.resumed_from is not None and resumed.resumed_from.step == 7
        epoch, step = resumed.load_checkpoint(resumed.resumed_from, model, optimizer)
        assert (epoch, step) == (1, 7) and resumed.step == 8
        continued = _train(resumed, model, optimizer, range(epoch + 1, EPOCHS))
    assert continued == reference[2 * STEPS :]

    rewinds = [e for e in journal(resumed.run_dir) if e["kind"] == "rewind"]
    assert rewinds == [{**rewinds[0], "step": 7, "checkpoint": resumed.resumed_from.name}]
    view = read_run(resumed.run_id, RunStore(store_dir))
    points = view.metric_history["loss"]
    assert [p["step"] for p in points] == list(range(EPOCHS * STEPS))  # 8 and 9 of the dead process are gone
    assert max(p["value"] for p in points) < 100
    summary = view.record["metric_summary"]["loss"]
    assert summary["count"] == EPOCHS * STEPS and summary["max"] < 100
    assert view.record["status"] == "completed"


def test_resume_of_a_run_without_checkpoints_warns_and_does_not_rewind(caplog: pytest.LogCaptureFixture) -> None:
    with ut.experiment_tracking("empty", config()) as tracker:
        tracker.log_metrics({"loss": 1.0}, step=0)
    with ut.experiment_tracking("empty", config(), resume=tracker.run_id) as resumed:
        assert resumed.resumed_from is None
    assert "no intact checkpoint" in caplog.text
    assert not [e for e in journal(resumed.run_dir) if e["kind"] == "rewind"]


def test_resume_last_needs_an_earlier_run() -> None:
    with pytest.raises(ut.RunNotFoundError, match="no earlier run of experiment 'nothing'"):
        ut.experiment_tracking("nothing", config(), resume="last")


KILLED_MID_SAVE = """
import os, signal, torch
import unitrack as ut
from unitrack.checkpoint import tensorfile

model = torch.nn.Linear(64, 64)
tracker = ut.experiment_tracking("killed", {"monitoring": {"enabled": False}, "checkpointing": {"async_save": False}})
tracker.save_checkpoint(model, 0, 0)
real = tensorfile.write_tensor_file

def write_then_die(path, *args, **kwargs):
    digest = real(path, *args, **kwargs)
    if path.name.startswith("state"):  # the weights are on disk, the manifest is not
        print(tracker.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return digest

tensorfile.write_tensor_file = write_then_die
tracker.save_checkpoint(model, 1, 1)
"""


def test_a_process_killed_mid_save_leaves_nothing_that_loads(tmp_path: Path) -> None:
    result = run_script(KILLED_MID_SAVE, tmp_path)
    assert result.returncode == -signal.SIGKILL, result.stderr
    run_id = result.stdout.strip()
    folder = RunStore(tmp_path / "store").resolve(run_id).root / "checkpoints"
    leftovers = [p for p in folder.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1 and (leftovers[0] / "model.safetensors").exists()

    with ut.experiment_tracking("other", config()) as other, pytest.raises(ut.CheckpointCorruptError, match=r"manifest\.json is missing"):
        other.load_checkpoint(leftovers[0], torch.nn.Linear(64, 64))
    with ut.experiment_tracking("killed", config(), resume=run_id) as resumed:
        assert [c.step for c in resumed.list_checkpoints()] == [0]
        assert resumed.resumed_from.step == 0
    assert [p.name for p in folder.iterdir()] == [resumed.resumed_from.name]  # the temporary is removed


def test_a_checkpoint_committed_but_never_registered_is_adopted_on_resume() -> None:
    """A process may die between renaming a finished checkpoint into place and updating the registry."""
    import json

    model = make_model()
    with ut.experiment_tracking("orphan", config()) as tracker:
        tracker.save_checkpoint(model, 0, 0, loss=2.0)
        tracker.save_checkpoint(model, 1, 5, loss=1.0)
    registry_file = tracker.run_dir / "checkpoints.json"
    registry = json.loads(registry_file.read_text())
    registry["checkpoints"] = registry["checkpoints"][:1]
    registry_file.write_text(json.dumps(registry))

    with ut.experiment_tracking("orphan", config(), resume=tracker.run_id) as resumed:
        assert [(c.step, c.metrics) for c in resumed.list_checkpoints()] == [(0, {"loss": 2.0}), (5, {"loss": 1.0})]
        assert resumed.resumed_from.step == 5
        assert resumed.load_checkpoint("last", make_model(1)) == (1, 5)
    announced = [e["name"] for e in journal(resumed.run_dir) if e["kind"] == "checkpoint"]
    assert announced[-1] == resumed.resumed_from.name and len(announced) == 3


def test_resume_from_best_rewinds_to_the_best_checkpoint() -> None:
    model = make_model()
    settings = config(monitor="val_loss", resume_from="best")
    with ut.experiment_tracking("best-resume", settings) as tracker:
        for step, val_loss in enumerate([0.5, 0.1, 0.4]):
            tracker.log_metrics({"val_loss": val_loss}, step=step)
            tracker.save_checkpoint(model, 0, step, val_loss=val_loss)
    with ut.experiment_tracking("best-resume", settings, resume="last") as resumed:
        assert resumed.resumed_from.step == 1 and resumed.step == 2
    view = read_run(resumed.run_id, RunStore(resumed.store.root))
    assert [p["step"] for p in view.metric_history["val_loss"]] == [0, 1]

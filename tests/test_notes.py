"""A run's note (written by ``unitrack ui``): kept in the run and mirrored to MLflow's run
description and a W&B run's notes, through the journal like every other event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import unitrack as ut
from tests.conftest import quiet_config
from unitrack.store.runs import RunStore
from unitrack.workflow.notes import NoteError, deliver_in_background, set_note


def _note_of_wandb_run(folder: Path) -> Any:
    from tests.backend_services import wandb_records

    runs = [r["run"] for r in wandb_records(folder) if r["type"] == "run"]
    return runs[-1].get("notes") if runs else None


def test_note_reaches_mlflow_and_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    config = quiet_config(tracking={"use_mlflow": True, "use_wandb": True, "wandb_dir": str(tmp_path / "wb")})
    with ut.experiment_tracking("noted", config) as tracker:
        tracker.log_metrics({"loss": 1.0}, step=0)
    store = RunStore(tmp_path / "store")
    saved = set_note(store, tracker.run_id, "tried a wider layer; loss flat")
    assert saved["note"] == "tried a wider layer; loss flat"
    deliver_in_background(store, tracker.run_id).join(300)
    info = json.loads((tracker.run_dir / "run.json").read_text())
    assert info["note"] == "tried a wider layer; loss flat" and info["status"] == "completed"
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (found,) = client.search_runs(experiments, f"tags.`unitrack.run_id` = '{tracker.run_id}'")
    assert found.data.tags["mlflow.note.content"] == "tried a wider layer; loss flat"
    folders = sorted((tmp_path / "wb" / "wandb").glob(f"offline-run-*-{tracker.run_id}"))
    assert _note_of_wandb_run(folders[-1]) == "tried a wider layer; loss flat"


def test_a_running_run_takes_no_note(tmp_path: Path) -> None:
    tracker = ut.ExperimentTracker("busy", quiet_config())
    try:
        with pytest.raises(NoteError, match="still running"):
            set_note(RunStore(tmp_path / "store"), tracker.run_id, "too early")
    finally:
        tracker.finish("completed")

"""The documented loop (seed 003: ``step`` from ``enumerate(loader)``, so it goes back to 0 every
epoch) with every backend on: each one holds every point, read back with its own reader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import unitrack as ut
from backends.mlflow_server import MlflowServer
from tests.backend_services import mlflow_points, mlflow_run, tensorboard_scalars, wandb_history, wandb_summary
from tests.conftest import metric_points, quiet_config
from unitrack.cli.app import app

EPOCHS, BATCHES = 2, 60


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


def loss_at(epoch: int, step: int) -> float:
    return 1.0 / (epoch * BATCHES + step + 1)


def test_the_documented_loop_lands_every_point_in_every_backend(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    config = quiet_config(
        tracking={
            "use_mlflow": True, "mlflow_tracking_uri": mlflow_server.uri,
            "use_tensorboard": True, "tensorboard_log_dir": str(tmp_path / "tb"),
            "use_wandb": True, "wandb_dir": str(tmp_path / "wb"),
        },
        checkpointing={"async_save": False},
    )  # fmt: skip
    model = torch.nn.Linear(4, 2)
    loader = range(BATCHES)
    best_val_loss = float("inf")
    with ut.experiment_tracking("documented", config) as tracker:
        for epoch in range(EPOCHS):
            for step, _batch in enumerate(loader):
                tracker.log_metrics({"loss": loss_at(epoch, step)}, step=step)
            val_loss = 1.0 / (epoch + 1)
            tracker.save_checkpoint(model=model, epoch=epoch, step=step, val_loss=val_loss, is_best=val_loss < best_val_loss)
            best_val_loss = min(best_val_loss, val_loss)
    logged = [(step, loss_at(epoch, step)) for epoch in range(EPOCHS) for step in range(BATCHES)]

    assert metric_points(tracker.run_dir, "loss") == logged  # local: the journal, in logged order

    run = mlflow_run(mlflow_server.uri, tracker.run_id, "documented")
    assert mlflow_points(mlflow_server.uri, run.info.run_id, "loss") == sorted(logged)  # MlflowClient

    (tb,) = tensorboard_scalars(tmp_path / "tb").values()  # TensorBoard's EventMultiplexer
    assert [s for s, _ in tb["loss"]] == [s for s, _ in logged]
    assert [v for _, v in tb["loss"]] == pytest.approx([v for _, v in logged], rel=1e-6)

    (wb,) = (tmp_path / "wb" / "wandb").glob(f"offline-run-*-{tracker.run_id}")
    assert wandb_history(wb, "loss") == logged  # `wandb leet inspect --json`
    summary = wandb_summary(wb)["summary"]
    assert summary["best/loss"] == min(v for _, v in logged)
    assert not any("not_accepted" in key for key in summary)

    # every backend is in sync, and says so
    shown = json.loads(CliRunner().invoke(app, ["show", tracker.run_id, "--json"]).stdout)
    assert {name: state["in_sync"] for name, state in shown["delivery"].items()} == dict.fromkeys(
        ("mlflow", "tensorboard", "wandb"), True
    )
    # unitrack's readers of each backend give the logged steps back, the same number everywhere
    host = mlflow_server.uri.removeprefix("http://")
    refs = {
        "local": tracker.run_id,
        "mlflow": f"mlflow://{host}/{run.info.run_id}",
        "wandb": f"wandb:{wb}",
        "tensorboard": f"tb:{tmp_path / 'tb'}#documented_{tracker.run_id}",
    }
    for source, ref in refs.items():
        exported = CliRunner().invoke(app, ["export", ref, "--json"])
        assert exported.exit_code == 0, (source, exported.output)
        points = sorted((p["step"], p["value"]) for p in json.loads(exported.stdout)["metric_history"]["loss"])
        assert [s for s, _ in points] == [s for s, _ in sorted(logged)], source
        assert [v for _, v in points] == pytest.approx([v for _, v in sorted(logged)], rel=1e-6), source
    # a backend's run shows what it knows and nothing in its place where it does not (host, sizes)
    shown_mlflow = CliRunner().invoke(app, ["show", refs["mlflow"]])
    assert shown_mlflow.exit_code == 0 and "checkpoints" in shown_mlflow.stdout, shown_mlflow.output
    assert "None" not in shown_mlflow.stdout


def test_why_a_run_failed_reaches_every_backend(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = quiet_config(
        tracking={
            "use_mlflow": True, "mlflow_tracking_uri": mlflow_server.uri,
            "use_tensorboard": True, "tensorboard_log_dir": str(tmp_path / "tb"),
            "use_wandb": True, "wandb_dir": str(tmp_path / "wb"),
        },
    )  # fmt: skip
    tracker = ut.ExperimentTracker("failing", config)
    with pytest.raises(ValueError), tracker:
        tracker.log_metrics({"loss": 1.0}, step=0)
        raise ValueError("labels out of range")

    run = mlflow_run(mlflow_server.uri, tracker.run_id, "failing")
    assert run.info.status == "FAILED"
    assert run.data.tags["unitrack.error"] == "ValueError: labels out of range"
    assert 'raise ValueError("labels out of range")' in run.data.tags["unitrack.error.traceback"]

    (wb,) = (tmp_path / "wb" / "wandb").glob(f"offline-run-*-{tracker.run_id}")
    summary = wandb_summary(wb)["summary"]
    assert summary["unitrack/error"] == "ValueError: labels out of range"
    assert "Traceback" in summary["unitrack/error_traceback"]

    folder = tmp_path / "tb" / f"failing_{tracker.run_id}"
    accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0}).Reload()
    (text,) = accumulator.Tensors("unitrack/error")
    assert "ValueError: labels out of range" in text.tensor_proto.string_val[0].decode()

    host = mlflow_server.uri.removeprefix("http://")
    for ref in (f"mlflow://{host}/{run.info.run_id}", f"wandb:{wb}"):  # and the readers give it back
        error = json.loads(CliRunner().invoke(app, ["show", ref, "--json"]).stdout)["error"]
        assert (error["type"], error["message"]) == ("ValueError", "labels out of range"), ref

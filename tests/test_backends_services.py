"""The three backends against the real things: an `mlflow server`, TensorBoard's reader, W&B offline runs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import unitrack as ut
from backends.mlflow_server import MlflowServer, free_port
from tests.backend_services import mlflow_points, mlflow_run, tensorboard_scalars, wandb_history, wandb_summary
from tests.conftest import quiet_config
from unitrack.events import CHECKPOINT, HISTOGRAM, REWIND

STEPS = 120


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


def all_backends_yaml(tmp_path: Path, uri: str) -> Path:
    path = tmp_path / "all.yaml"
    path.write_text(
        f"""
description: "all backends at once"
tags: ["nlp", "test"]
tracking:
  use_mlflow: true
  mlflow_tracking_uri: "{uri}"
  use_tensorboard: true
  tensorboard_log_dir: "{tmp_path / 'tb'}"
  use_wandb: true
  wandb_project: "unitrack-tests"
  wandb_dir: "{tmp_path / 'wb'}"
monitoring:
  enabled: false
capture:
  packages: false
"""
    )
    return path


def assert_points(actual: list[tuple[int, float]], expected: list[tuple[int, float]], rel: float = 1e-12) -> None:
    """The same steps, in order, with the same values (TensorBoard keeps float32: compare with rel=1e-6)."""
    assert [step for step, _ in actual] == [step for step, _ in expected]
    assert [value for _, value in actual] == pytest.approx([value for _, value in expected], rel=rel)


def wandb_run_dir(tmp_path: Path, run_id: str) -> Path:
    found = sorted((tmp_path / "wb" / "wandb").glob(f"offline-run-*-{run_id}"))
    assert found, f"no offline W&B run {run_id} under {tmp_path / 'wb'}"
    return found[-1]


def test_one_yaml_with_all_backends_lands_every_point_param_and_status_in_each(
    tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    with ut.experiment_tracking("everywhere", all_backends_yaml(tmp_path, mlflow_server.uri)) as tracker:
        tracker.log_hyperparameters({"lr": 0.01, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}, "epochs": 3})
        for step in range(STEPS):
            tracker.log_metrics({"train/loss": 1.0 / (step + 1), "acc": step / STEPS}, step=step)
    expected_loss = [(s, 1.0 / (s + 1)) for s in range(STEPS)]

    run = mlflow_run(mlflow_server.uri, tracker.run_id, "everywhere")
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.01", "optimizer/name": "adam", "optimizer/betas": "[0.9, 0.99]", "epochs": "3"}
    assert run.data.tags["mlflow.note.content"] == "all backends at once" and "nlp" in run.data.tags
    assert_points(mlflow_points(mlflow_server.uri, run.info.run_id, "train/loss"), expected_loss)

    scalars = tensorboard_scalars(tmp_path / "tb")
    assert list(scalars) == [f"everywhere_{tracker.run_id}"]
    tb = scalars[f"everywhere_{tracker.run_id}"]
    assert_points(tb["train/loss"], expected_loss, rel=1e-6)

    wb = wandb_run_dir(tmp_path, tracker.run_id)
    assert_points(wandb_history(wb, "train/loss"), expected_loss)
    summary = wandb_summary(wb)
    assert summary["state"] == "finished" and summary["config"]["lr"] == 0.01
    assert summary["config"]["optimizer/name"] == "adam" and summary["summary"]["best/train/loss"] == 1.0 / STEPS

    states = json.loads((tracker.run_dir / "run.json").read_text())["backends"]
    assert {name: state["in_sync"] for name, state in states.items()} == {"mlflow": True, "tensorboard": True, "wandb": True}


@pytest.mark.parametrize(("status", "mlflow_status"), [("failed", "FAILED"), ("interrupted", "KILLED")])
def test_the_final_status_is_mapped_in_mlflow(
    mlflow_server: MlflowServer, status: str, mlflow_status: str, capfd: pytest.CaptureFixture[str]
) -> None:
    tracker = ut.ExperimentTracker("statuses", quiet_config(tracking={"use_mlflow": True, "mlflow_tracking_uri": mlflow_server.uri}))
    tracker.log_metrics({"x": 1.0})
    tracker.finish(status)
    run = mlflow_run(mlflow_server.uri, tracker.run_id, "statuses")
    assert run.info.status == mlflow_status and run.info.end_time is not None
    assert capfd.readouterr().out == ""  # the backend never writes into the user's output (or a --json)


def test_a_parameter_over_mlflows_limit_is_shortened_with_its_hash_and_kept_in_full(mlflow_server: MlflowServer) -> None:
    from mlflow.tracking import MlflowClient
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    long_value = "x" * (MAX_PARAM_VAL_LENGTH + 500)
    config = quiet_config(tracking={"use_mlflow": True, "mlflow_tracking_uri": mlflow_server.uri})
    with ut.experiment_tracking("limits", config) as tracker:
        tracker.log_hyperparameters({"prompt": long_value, "short": "ok"})
    run = mlflow_run(mlflow_server.uri, tracker.run_id, "limits")
    stored = run.data.params["prompt"]
    assert len(stored) <= MAX_PARAM_VAL_LENGTH and "sha256:" in stored and "params.json" in stored
    assert run.data.params["short"] == "ok"
    local = MlflowClient(mlflow_server.uri).download_artifacts(run.info.run_id, "params.json")
    assert json.loads(Path(local).read_text())["prompt"] == long_value


def test_a_backend_that_cannot_start_warns_once_and_sync_delivers_it_later_exactly_once(
    mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from typer.testing import CliRunner

    from unitrack.cli.app import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nobody listens there
    config = quiet_config(tracking={"use_mlflow": True, "retry_attempts": 1, "retry_max_wait": 0.1, "finish_timeout": 5})
    with caplog.at_level(logging.WARNING, logger="unitrack"), ut.experiment_tracking("late", config) as tracker:
        for step in range(50):
            tracker.log_metrics({"loss": float(step)}, step=step)
    assert len([r for r in caplog.records if "could not start" in r.getMessage()]) == 1

    shown = json.loads(CliRunner().invoke(app, ["show", tracker.run_id, "--json"]).stdout)
    assert shown["delivery"]["mlflow"]["in_sync"] is False

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    for _ in range(2):  # the second sync has nothing left to send
        result = CliRunner().invoke(app, ["sync", tracker.run_id, "--json"])
        assert result.exit_code == 0, result.output
    run = mlflow_run(mlflow_server.uri, tracker.run_id, "late")
    assert mlflow_points(mlflow_server.uri, run.info.run_id, "loss") == [(s, float(s)) for s in range(50)]
    assert run.info.status == "FINISHED"
    shown = json.loads(CliRunner().invoke(app, ["show", tracker.run_id, "--json"]).stdout)
    assert shown["delivery"]["mlflow"]["in_sync"] is True


def test_mlflow_without_a_server_uses_the_sqlite_store_of_mlflow_tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # no mlflow_tracking_uri in the config
    with ut.experiment_tracking("local-db", quiet_config(tracking={"use_mlflow": True})) as tracker:
        tracker.log_hyperparameters({"lr": 0.5})
        for step in range(3):
            tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    run = mlflow_run(uri, tracker.run_id, "local-db")
    assert run.info.status == "FINISHED" and run.data.params["lr"] == "0.5"
    assert mlflow_points(uri, run.info.run_id, "loss") == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]


def test_a_second_tracker_in_one_process_gets_its_own_wandb_run(tmp_path: Path) -> None:
    config = quiet_config(tracking={"use_wandb": True, "wandb_dir": str(tmp_path / "wb")})
    run_ids = []
    for value in (1.0, 2.0):
        with ut.experiment_tracking("twice", config) as tracker:
            for step in range(5):
                tracker.log_metrics({"v": value}, step=step)
        run_ids.append(tracker.run_id)
    first, second = (wandb_run_dir(tmp_path, run_id) for run_id in run_ids)
    assert first != second
    assert wandb_history(first, "v") == [(s, 1.0) for s in range(5)]
    assert wandb_history(second, "v") == [(s, 2.0) for s in range(5)]


def test_wandb_gets_logged_files_and_checkpoints_as_artifacts(tmp_path: Path) -> None:
    import torch

    from tests.backend_services import wandb_records

    notes = tmp_path / "notes.txt"
    notes.write_text("what this run tried")
    config = quiet_config(
        tracking={"use_wandb": True, "wandb_dir": str(tmp_path / "wb")},
        checkpointing={"upload": {"wandb": "all"}, "async_save": False},
    )
    with ut.experiment_tracking("wb-files", config) as tracker:
        tracker.log_artifact(notes)
        info = tracker.save_checkpoint(torch.nn.Linear(2, 2), epoch=0, step=0, val_loss=1.0)
    records = wandb_records(wandb_run_dir(tmp_path, tracker.run_id))
    files = [f["path"] for r in records if r["type"] == "files" for f in r["files"]["files"]]
    assert "notes.txt" in files
    (artifact,) = [r["artifact"] for r in records if r["type"] == "artifact"]
    assert info is not None and info.name in artifact["aliases"]
    assert {"model.safetensors", "manifest.json"} <= {entry["path"] for entry in artifact["manifest"]["contents"]}


def test_tensorboard_gets_histograms_the_graph_hparams_status_and_honours_a_rewind(tmp_path: Path) -> None:
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    config = quiet_config(tracking={"use_tensorboard": True, "tensorboard_log_dir": str(tmp_path / "tb")})
    histogram = {"min": -1.0, "max": 1.0, "num": 4, "sum": 0.0, "sum_squares": 2.0,
                 "bucket_limits": [0.0, 1.0], "bucket_counts": [2, 2]}  # fmt: skip
    tracker = ut.ExperimentTracker("tb", config)
    tracker.log_hyperparameters({"lr": 0.1, "act": "relu"})
    tracker.watch(model, example_input=torch.zeros(1, 4))
    for step in range(10):
        tracker.log_metrics({"loss": float(step)}, step=step)
    tracker._emit_record(HISTOGRAM, {"step": 3, "values": {"layer/weight": histogram}})
    tracker._emit_record(REWIND, {"step": 5, "checkpoint": "epoch-1"})
    for step in range(6, 8):  # the resumed run replaces steps 6.. with new values
        tracker.log_metrics({"loss": 100.0 + step}, step=step)
    tracker.finish("interrupted")

    scalars = tensorboard_scalars(tmp_path / "tb")[f"tb_{tracker.run_id}"]
    assert scalars["loss"] == [(s, float(s)) for s in range(6)] + [(6, 106.0), (7, 107.0)]
    folder = tmp_path / "tb" / f"tb_{tracker.run_id}"
    accumulator = EventAccumulator(str(folder), size_guidance={"histograms": 0, "tensors": 0}).Reload()
    assert [h.step for h in accumulator.Histograms("layer/weight")] == [3]
    assert accumulator.Graph() is not None
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import api_pb2

    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "tb"))
    multiplexer.Reload()
    hparams = multiplexer.PluginRunToTagToContent(metadata.PLUGIN_NAME)[f"tb_{tracker.run_id}"]
    end = plugin_data_pb2.HParamsPluginData.FromString(hparams[metadata.SESSION_END_INFO_TAG]).session_end_info
    assert end.status == api_pb2.STATUS_FAILURE
    start = plugin_data_pb2.HParamsPluginData.FromString(hparams[metadata.SESSION_START_INFO_TAG]).session_start_info
    assert start.hparams["lr"].number_value == 0.1 and start.hparams["act"].string_value == "relu"
    assert start.hparams["unitrack/status"].string_value == "interrupted"
    assert json.loads((tracker.run_dir / "run.json").read_text())["backends"]["tensorboard"]["errors"] == 0


def test_a_missing_optional_package_is_one_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    from unitrack.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match=r"pip install 'unitrack\[mlflow\]'"):
        ut.ExperimentTracker("x", quiet_config(tracking={"use_mlflow": True}))


def test_show_and_export_read_runs_straight_from_each_backend(
    tmp_path: Path, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from unitrack.cli.app import app

    with ut.experiment_tracking("readback", all_backends_yaml(tmp_path, mlflow_server.uri)) as tracker:
        tracker.log_hyperparameters({"lr": 0.5, "layers": 3})
        for step in range(20):
            tracker.log_metrics({"loss": 10.0 - step}, step=step)
    expected = [{"step": s, "value": 10.0 - s} for s in range(20)]
    mlflow_id = mlflow_run(mlflow_server.uri, tracker.run_id, "readback").info.run_id
    host = mlflow_server.uri.removeprefix("http://")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    refs = {
        "mlflow": f"mlflow://{host}/{mlflow_id}",
        "mlflow-env": f"mlflow:{mlflow_id}",
        "wandb": f"wandb:{wandb_run_dir(tmp_path, tracker.run_id)}",
        "tensorboard": f"tb:{tmp_path / 'tb'}#readback_{tracker.run_id}",
    }
    for source, ref in refs.items():
        result = CliRunner().invoke(app, ["export", ref, "--json"])
        assert result.exit_code == 0, (source, result.output)
        data = json.loads(result.stdout)
        assert [{"step": p["step"], "value": p["value"]} for p in data["metric_history"]["loss"]] == expected, source
        assert data["status"] == "completed", source
        assert data["params"]["lr"] == 0.5 and data["params"]["layers"] == 3, source
        shown = CliRunner().invoke(app, ["show", ref])
        assert shown.exit_code == 0 and "loss" in shown.stdout, (source, shown.output)


def test_checkpoints_are_uploaded_per_policy(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    from mlflow.tracking import MlflowClient

    config = quiet_config(
        tracking={"use_mlflow": True, "mlflow_tracking_uri": mlflow_server.uri},
        checkpointing={"upload": {"mlflow": "best"}},
    )
    tracker = ut.ExperimentTracker("ckpt", config)
    for epoch, best in ((0, True), (1, False)):
        folder = tmp_path / f"epoch-{epoch}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights %d" % epoch)
        (folder / "manifest.json").write_text("{}")
        event = {"name": f"epoch-{epoch}", "path": str(folder), "epoch": epoch, "step": epoch * 10,
                 "metrics": {"val_loss": 1.0 - epoch}, "is_best": best, "aliases": ["best"] if best else ["latest"]}  # fmt: skip
        tracker._emit_record(CHECKPOINT, event)
        tracker.log_metrics({"loss": 1.0}, step=epoch)
    tracker.finish()
    run = mlflow_run(mlflow_server.uri, tracker.run_id, "ckpt")
    uploaded = [a.path for a in MlflowClient(mlflow_server.uri).list_artifacts(run.info.run_id, "checkpoints")]
    assert uploaded == ["checkpoints/epoch-0"]
    assert run.data.tags["unitrack.best_checkpoint"] == "epoch-0"


def test_nan_and_infinities_reach_the_mlflow_server_as_its_own_client_sends_them(mlflow_server: MlflowServer) -> None:
    """unitrack builds log-batch requests itself; MLflow stores ±inf as ±max float: the same as its client."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    logged = [1.5, float("nan"), float("inf"), float("-inf"), 0.25]
    config = quiet_config(tracking={"use_mlflow": True, "mlflow_tracking_uri": mlflow_server.uri})
    with ut.experiment_tracking("non-finite", config) as tracker:
        for step, value in enumerate(logged):
            tracker.log_metrics({"loss": value}, step=step)
    ours = mlflow_run(mlflow_server.uri, tracker.run_id, "non-finite")

    client = MlflowClient(mlflow_server.uri)
    reference = client.create_run(ours.info.experiment_id).info.run_id
    client.log_batch(reference, metrics=[Metric("loss", value, 0, step) for step, value in enumerate(logged)])

    stored = mlflow_points(mlflow_server.uri, ours.info.run_id, "loss")
    assert [repr(value) for _, value in stored] == [repr(value) for _, value in mlflow_points(mlflow_server.uri, reference, "loss")]
    assert [step for step, _ in stored] == list(range(len(logged)))
    assert stored[0][1] == 1.5 and stored[1][1] != stored[1][1] and stored[2][1] > 1e308 and stored[3][1] < -1e308

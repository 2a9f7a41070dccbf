"""The built-in backends pass the conformance kit, read back with each service's own reader:
MLflow from a real `mlflow server`, TensorBoard with its EventMultiplexer, W&B offline runs with `wandb leet`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.mlflow_server import MlflowServer
from tests.backend_services import mlflow_points, mlflow_run, tensorboard_scalars, wandb_records
from unitrack.testing import check_backend


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


def kit_points(series: dict[str, list[tuple[int, float]]]) -> dict[str, list[tuple[int, float]]]:
    return {key: points for key, points in series.items() if key.startswith("kit/")}


def test_mlflow_conforms(mlflow_server: MlflowServer) -> None:
    from mlflow.tracking import MlflowClient

    from unitrack.backends.mlflow import MlflowBackend

    def read(run_id: str) -> dict[str, list[tuple[int, float]]]:
        client = MlflowClient(mlflow_server.uri)
        experiments = [e.experiment_id for e in client.search_experiments()]
        (run,) = client.search_runs(experiments, filter_string=f"tags.`unitrack.run_id` = '{run_id}'")
        return kit_points({key: mlflow_points(mlflow_server.uri, run.info.run_id, key) for key in run.data.metrics})

    def params(run_id: str) -> dict[str, str]:
        return dict(mlflow_run(mlflow_server.uri, run_id, "conformance").data.params)

    report = check_backend(
        MlflowBackend, read, read_params=params, overrides={"tracking.mlflow_tracking_uri": mlflow_server.uri}
    )
    assert report.ok


def test_tensorboard_conforms(tmp_path: Path) -> None:
    from unitrack.backends.tensorboard import TensorBoardBackend

    log_dir = tmp_path / "tb"

    def read(run_id: str) -> dict[str, list[tuple[int, float]]]:
        runs = tensorboard_scalars(log_dir)
        (name,) = [name for name in runs if name.endswith(run_id)]
        return kit_points(runs[name])

    assert check_backend(TensorBoardBackend, read, overrides={"tracking.tensorboard_log_dir": str(log_dir)}).ok


def test_wandb_offline_conforms(tmp_path: Path) -> None:
    from unitrack.backends.wandb import WandbBackend

    wandb_dir = tmp_path / "wb"

    def read(run_id: str) -> dict[str, list[tuple[int, float]]]:
        points: dict[str, list[tuple[int, float]]] = {}
        for run_dir in sorted((wandb_dir / "wandb").glob(f"offline-run-*-{run_id}")):  # one per reopening
            for record in wandb_records(run_dir):
                if record["type"] == "history":
                    item = record["history"]["item"]
                    step = item.get("unitrack/step", record["history"]["step"]["num"])  # the step the loop logged
                    for key, value in item.items():
                        points.setdefault(key, []).append((step, value))
        return kit_points(points)

    overrides = {"tracking.wandb_dir": str(wandb_dir), "tracking.wandb_mode": "offline"}
    assert check_backend(WandbBackend, read, overrides=overrides).ok

"""Reading the real services back in tests: MLflow through MlflowClient, TensorBoard through its
EventMultiplexer, offline W&B runs through ``wandb leet inspect --json``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import PROCESS_TIMEOUT_S


def mlflow_run(uri: str, unitrack_run_id: str, experiment: str) -> Any:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        filter_string=f"tags.`unitrack.run_id` = '{unitrack_run_id}'",
    )
    assert len(found) == 1, f"expected one MLflow run for {unitrack_run_id}, found {len(found)}"
    return found[0]


def mlflow_points(uri: str, mlflow_run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    history = MlflowClient(uri).get_metric_history(mlflow_run_id, key)
    return sorted((m.step, m.value) for m in history)


def tensorboard_scalars(log_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every scalar of every run under ``log_dir``, as TensorBoard itself reads them."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.util import tensor_util

    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(log_dir))
    multiplexer.Reload()
    scalars: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run, tags in multiplexer.Runs().items():
        accumulator = multiplexer.GetAccumulator(run)
        scalars[run] = {}
        for tag in tags.get("tensors", []):
            if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
                continue
            events = accumulator.Tensors(tag)
            scalars[run][tag] = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto).item())) for e in events]
    return scalars


def wandb_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records of an offline W&B run, as ``wandb leet inspect --json`` prints them."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(run_dir)],
        capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def wandb_summary(run_dir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def wandb_history(run_dir: Path, key: str) -> list[tuple[int, float]]:
    """(the step the loop logged, value) of every point of ``key``, in the order W&B holds them
    (``unitrack/step`` of each row; W&B's own step for rows written before unitrack logged it)."""
    return [
        (r["history"]["item"].get("unitrack/step", r["history"]["step"]["num"]), r["history"]["item"][key])
        for r in wandb_records(run_dir)
        if r["type"] == "history" and key in r["history"]["item"]
    ]

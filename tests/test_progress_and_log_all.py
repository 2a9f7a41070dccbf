"""tracker.progress (ETA as metrics, quiet outside a terminal) and tvault-style log_all."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path

import pytest
import torch

import unitrack as ut
from tests.conftest import journal, quiet_config
from unitrack.progress import ETA_KEY, THROUGHPUT_KEY, estimate


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_estimate_gives_rate_and_time_left() -> None:
    sample = estimate(done=30, total=100, started_step=10, elapsed_s=4.0)
    assert sample.steps_per_s == pytest.approx(5.0)
    assert sample.eta_s == pytest.approx(14.0)
    assert math.isinf(estimate(done=0, total=10, started_step=0, elapsed_s=1.0).eta_s)


def test_progress_logs_throughput_and_eta_without_moving_the_step(tmp_path: Path) -> None:
    with ut.experiment_tracking("prog", quiet_config()) as tracker:
        reporter = tracker.progress(200, interval=0.05)
        assert not reporter.interactive  # pytest captures stderr: no bar, metrics only
        for step in range(100):
            tracker.log_metrics({"loss": 1.0 / (step + 1)})
            time.sleep(0.002)
        run_dir = tracker.run_dir
    metric_events = [e for e in journal(run_dir) if e["kind"] == "metric"]
    loss_steps = [e["step"] for e in metric_events if "loss" in e["values"]]
    assert loss_steps == list(range(100))  # progress never shifted the user's steps
    progress = [e for e in metric_events if THROUGHPUT_KEY in e["values"]]
    assert progress, "no progress metrics were logged"
    last = progress[-1]
    assert last["step"] == 99
    assert last["values"][THROUGHPUT_KEY] > 0
    assert float(last["values"][ETA_KEY]) > 0  # 100 of 200 steps left


def test_progress_bar_draws_in_a_terminal() -> None:
    stream = _Tty()
    from unitrack.progress import ProgressReporter

    counter = {"step": 0}
    reporter = ProgressReporter(10, lambda: counter["step"], lambda s, step: None, stream=stream, interval=0.01)
    reporter.start()
    counter["step"] = 10
    reporter.stop()
    assert "10/10" in stream.getvalue()


def test_progress_rejects_a_bad_total() -> None:
    with ut.experiment_tracking("prog", quiet_config()) as tracker, pytest.raises(ValueError, match="total"):
        tracker.progress(0)


def test_log_all_records_model_tags_and_result_as_a_finished_run(store_dir: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    tags = {"language": "pytorch", "learning_rate": 3e-4}
    run_id = ut.log_all(model, tags=tags, result=0.93, optimizer=optimizer, config=quiet_config())
    run = json.loads((store_dir / "runs" / run_id / "run.json").read_text())
    assert run["status"] == "completed"
    assert run["tags"]["language"] == "pytorch" and run["tags"]["learning_rate"] == "0.0003"
    params = json.loads((store_dir / "runs" / run_id / "params.json").read_text())
    assert params["optimizer/lr"] == 3e-4 and params["model/parameters"] == 4 * 3 + 3 + 3 * 2 + 2
    assert (store_dir / "runs" / run_id / "artifacts" / "model" / "architecture.txt").exists()
    from unitrack.store.runs import RunStore

    assert RunStore(store_dir).load(run_id).last_metrics["result"] == 0.93


def test_watch_with_example_input_stores_the_model_graph_and_epochs_start_progress() -> None:
    from tensorboard.compat.proto.graph_pb2 import GraphDef

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(12, 4)), batch_size=4)
    with ut.experiment_tracking("graph", quiet_config()) as tracker:
        tracker.watch(model, dataloader=loader, example_input=torch.zeros(1, 4), epochs=2)
        assert tracker._progress is not None and tracker._progress.total == 6
        assert model.training  # tracing left the model as it was
        run_dir = tracker.run_dir
    graph = GraphDef()
    graph.ParseFromString((run_dir / "artifacts" / "model" / "graph.pb").read_bytes())
    ops = {node.op for node in graph.node}
    assert "aten::linear" in ops and "aten::relu" in ops

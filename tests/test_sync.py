"""`unitrack sync --all` and delivery of order-free batches in parallel, without servers."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from typer.testing import CliRunner

import unitrack as ut
from tests.backend_services import tensorboard_scalars
from tests.conftest import PATIENCE_S, quiet_config
from unitrack.backends.base import Backend, Capabilities, RunInfo
from unitrack.cli.app import app
from unitrack.events import Event, MetricEvent


def test_sync_all_delivers_what_a_backend_could_not_take_and_a_second_sync_sends_nothing(tmp_path: Path) -> None:
    blocked = tmp_path / "tb"
    blocked.write_text("a file where the log dir should be")  # TensorBoard cannot start
    config = quiet_config(tracking={"use_tensorboard": True, "tensorboard_log_dir": str(blocked), "retry_attempts": 1, "finish_timeout": 2})
    with ut.experiment_tracking("blocked", config) as tracker:
        for step in range(30):
            tracker.log_metrics({"loss": float(step)}, step=step)
    shown = json.loads(CliRunner().invoke(app, ["show", tracker.run_id, "--json"]).stdout)
    assert shown["delivery"]["tensorboard"]["in_sync"] is False

    blocked.unlink()
    first = json.loads(CliRunner().invoke(app, ["sync", "--all", "--json"]).stdout)
    assert [(r["run_id"], r["backend"], r["in_sync"]) for r in first] == [(tracker.run_id, "tensorboard", True)]
    assert json.loads(CliRunner().invoke(app, ["sync", "--all", "--json"]).stdout) == []
    scalars = tensorboard_scalars(blocked)[f"blocked_{tracker.run_id}"]
    assert scalars["loss"] == [(s, float(s)) for s in range(30)]


class Parallel(Backend):
    """Takes up to 4 batches at once and fails every fifth one, like a busy server."""

    name = "parallel"
    capabilities = Capabilities(max_metric_values_per_write=10, concurrent_writes=4)

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []
        self.calls = 0
        self.most_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def open(self, run: RunInfo) -> None:
        pass

    def write(self, events: Sequence[Event]) -> None:
        with self._lock:
            self.calls += 1
            failing = self.calls % 5 == 0
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            threading.Event().wait(0.002)
            if failing:
                raise ConnectionError("503")
            with self._lock:
                self.points += [(e.step, e.values["x"]) for e in events if isinstance(e, MetricEvent)]
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self, status: str) -> None:
        pass


def test_order_free_batches_travel_in_parallel_and_each_point_arrives_once() -> None:
    backend = Parallel()
    config = quiet_config(tracking={"retry_max_wait": 0.01, "breaker_cooldown": 0.05})
    with ut.experiment_tracking("parallel", config, backends=[backend]) as tracker:
        for step in range(2000):
            tracker.log_metrics({"x": float(step)}, step=step)
    assert sorted(backend.points) == [(s, float(s)) for s in range(2000)]
    assert backend.most_in_flight > 1
    assert json.loads((tracker.run_dir / "run.json").read_text())["backends"]["parallel"]["in_sync"] is True


class Straggler(Backend):
    """Takes 4 batches at once; the first one is answered only after 8 later ones, like a request
    that waited on a lock at the server."""

    name = "straggler"
    capabilities = Capabilities(max_metric_values_per_write=10, concurrent_writes=4)

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []
        self.answered = 0
        self.overtaken = False
        self._first = True
        self._changed = threading.Condition()

    def open(self, run: RunInfo) -> None:
        pass

    def write(self, events: Sequence[Event]) -> None:
        with self._changed:
            first, self._first = self._first, False
            if first:  # held until later batches overtake it, or a generous bound
                self.overtaken = self._changed.wait_for(lambda: self.answered >= 8, timeout=PATIENCE_S)
            self.points += [(e.step, e.values["x"]) for e in events if isinstance(e, MetricEvent)]
            self.answered += 1
            self._changed.notify_all()

    def close(self, status: str) -> None:
        pass


def test_a_slow_batch_does_not_hold_the_requests_behind_it() -> None:
    backend = Straggler()
    with ut.experiment_tracking("straggler", quiet_config(), backends=[backend]) as tracker:
        for step in range(200):
            tracker.log_metrics({"x": float(step)}, step=step)
    assert backend.overtaken, "the other workers waited for the slow request instead of sending on"
    assert sorted(backend.points) == [(s, float(s)) for s in range(200)]
    delivery = json.loads((tracker.run_dir / "run.json").read_text())["backends"]["straggler"]
    assert delivery["in_sync"] is True and delivery["owed"] == 0

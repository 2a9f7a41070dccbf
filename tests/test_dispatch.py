"""Delivery to backends: batches, retries, the circuit breaker, cursors, bounded finish."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import unitrack as ut
from tests.conftest import PATIENCE_S, quiet_config, wait_until
from unitrack.backends.base import Backend, Capabilities, PermanentBackendError, RunInfo
from unitrack.events import ArtifactEvent, Event, MetricEvent, ParamsEvent, StatusEvent
from unitrack.store.history import delivery_status
from unitrack.store.runs import RunStore

# finish() returns as soon as every healthy backend caught up: a long finish_timeout costs nothing
# there, and keeps a loaded machine from failing a test that means "everything is delivered"
FAST_RETRIES = {"retry_attempts": 3, "retry_max_wait": 0.05, "breaker_cooldown": 0.2, "finish_timeout": PATIENCE_S}


class Recorder(Backend):
    """A backend that keeps what it receives in memory, like a tracking server would on disk."""

    name = "recorder"
    capabilities = Capabilities(max_metric_values_per_write=7, max_params_per_write=2, supports_artifacts=True)

    def __init__(self) -> None:
        self.opened: RunInfo | None = None
        self.batches: list[list[Event]] = []
        self.artifacts: list[tuple[Path, str]] = []
        self.closed_with: str | None = None

    def open(self, run: RunInfo) -> None:
        self.opened = run

    def write(self, events: Sequence[Event]) -> None:
        self.batches.append(list(events))

    def put_artifact(self, path: Path, name: str) -> None:
        assert path.exists()
        self.artifacts.append((path, name))

    def close(self, status: str) -> None:
        self.closed_with = status

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]

    def points(self, key: str) -> list[tuple[int, float]]:
        return [(e.step, e.values[key]) for e in self.events if isinstance(e, MetricEvent) and key in e.values]


class Flaky(Recorder):
    """Fails the first ``failures`` writes, then works: a server restarting."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def write(self, events: Sequence[Event]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("server restarting")
        super().write(events)


class Down(Recorder):
    """A server that is down for the whole run. Clear ``release`` to keep its calls hanging until set."""

    name = "down"

    def __init__(self) -> None:
        super().__init__()
        self.called = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.returned = 0

    def write(self, events: Sequence[Event]) -> None:
        self.called.set()
        self.release.wait(PATIENCE_S)
        self.returned += 1
        raise ConnectionError("connection refused")


class Unreachable(Recorder):
    name = "unreachable"

    def open(self, run: RunInfo) -> None:
        raise ConnectionError("cannot reach http://127.0.0.1:9")


class Hanging(Recorder):
    """Its close never returns, like an exit handler waiting on a dead socket."""

    name = "hanging"

    def close(self, status: str) -> None:
        threading.Event().wait(3600)


def log_steps(tracker: ut.ExperimentTracker, steps: int) -> None:
    for step in range(steps):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "acc": step / steps}, step=step)


def test_a_healthy_backend_gets_everything_once_in_order_within_its_limits(tmp_path: Path) -> None:
    artifact = tmp_path / "notes.txt"
    artifact.write_text("hello")
    backend = Recorder()
    with ut.experiment_tracking("exp", quiet_config(tags={"team": "a"}), backends=[backend]) as tracker:
        tracker.log_hyperparameters({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
        log_steps(tracker, 500)
        tracker.log_artifact(artifact)
    assert backend.opened is not None and backend.opened.run_id == tracker.run_id
    assert backend.opened.experiment == "exp" and backend.opened.tags == {"team": "a"}
    assert backend.points("loss") == [(s, 1.0 / (s + 1)) for s in range(500)]
    seqs = [e.seq for e in backend.events]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    for batch in backend.batches:
        assert sum(len(e.values) for e in batch if isinstance(e, MetricEvent)) <= 7
        assert sum(len(e.values) for e in batch if isinstance(e, ParamsEvent)) <= 2 or len(batch) == 1
    assert [name for _, name in backend.artifacts] == ["notes.txt"]
    assert backend.closed_with == "completed"
    assert isinstance(backend.events[-1], StatusEvent)
    state = delivery_status(RunStore(tracker.store.root).resolve(tracker.run_id))["recorder"]
    assert state["in_sync"] and state["owed"] == 0


def test_transient_errors_are_retried_without_loss_or_duplicates() -> None:
    backend = Flaky(failures=2)
    config = quiet_config(tracking=FAST_RETRIES)
    with ut.experiment_tracking("exp", config, backends=[backend]) as tracker:
        log_steps(tracker, 300)
    assert backend.points("loss") == [(s, 1.0 / (s + 1)) for s in range(300)]
    assert backend.calls > 2 and backend.closed_with == "completed"


def test_a_dead_backend_never_reaches_the_loop_and_what_it_owes_is_recorded(caplog: pytest.LogCaptureFixture) -> None:
    down = Down()
    down.release.clear()  # its first call hangs, like a request to a server that does not answer
    healthy = Recorder()
    # the dead backend is retried until finish's deadline: keep it short, yet long enough for the
    # healthy backend to take the final status event on a loaded machine
    config = quiet_config(tracking={**FAST_RETRIES, "finish_timeout": 5.0})
    with caplog.at_level(logging.WARNING, logger="unitrack"):
        tracker = ut.ExperimentTracker("exp", config, backends=[down, healthy])
        tracker.log_metrics({"warmup": 1.0})
        wait_until(down.called.is_set, "the dead backend's first write")
        log_steps(tracker, 2000)  # every call returns while the backend hangs in its write
        assert down.returned == 0, "no log call may wait on a backend"
        down.release.set()
        assert tracker.flush(timeout=PATIENCE_S)
        wait_until(lambda: len(healthy.points("loss")) == 2000, "the healthy backend to get every point")
        started = time.perf_counter()
        tracker.finish()
        finish_took = time.perf_counter() - started
    assert finish_took < PATIENCE_S, "finish is bounded by finish_timeout, whatever the dead backend does"
    assert healthy.points("loss") == [(s, 1.0 / (s + 1)) for s in range(2000)], "one failing backend must not stop the others"
    run = json.loads((tracker.run_dir / "run.json").read_text())
    assert run["status"] == "completed"
    assert run["backends"]["down"]["owed"] > 0 and run["backends"]["down"]["errors"] >= 1
    assert "ConnectionError: connection refused" in run["backends"]["down"]["last_error"]
    assert run["backends"]["recorder"]["in_sync"] is True
    failing = [r for r in caplog.records if "'down' is failing" in r.getMessage()]
    assert len(failing) == 1, "one warning per outage, not one per batch"
    assert any("still owes" in r.getMessage() for r in caplog.records)


def test_a_backend_that_cannot_start_warns_once_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    healthy = Recorder()
    with caplog.at_level(logging.WARNING, logger="unitrack"), ut.experiment_tracking("exp", quiet_config(tracking=FAST_RETRIES), backends=[Unreachable(), healthy]) as tracker:
        log_steps(tracker, 100)
    warnings = [r.getMessage() for r in caplog.records if "could not start" in r.getMessage()]
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "unitrack sync" in warnings[0]
    assert len(healthy.points("loss")) == 100
    run = json.loads((tracker.run_dir / "run.json").read_text())
    assert run["status"] == "completed"
    assert run["backends"]["unreachable"]["started"] is False
    assert "cannot reach" in run["backends"]["unreachable"]["start_error"]


def test_a_hanging_backend_cannot_stall_finish() -> None:
    config = quiet_config(tracking={**FAST_RETRIES, "finish_timeout": 1.0})
    with ut.experiment_tracking("exp", config, backends=[Hanging()]) as tracker:
        log_steps(tracker, 50)
        started = time.perf_counter()
    # its close hangs for an hour: finish gives up after finish_timeout (+ a join's grace), far sooner
    assert time.perf_counter() - started < PATIENCE_S
    assert RunStore(tracker.store.root).load(tracker.run_id).status == "completed"


def test_a_permanently_rejected_batch_is_skipped_counted_and_not_in_sync(caplog: pytest.LogCaptureFixture) -> None:
    class Picky(Recorder):
        name = "picky"

        def write(self, events: Sequence[Event]) -> None:
            if any(isinstance(e, ParamsEvent) for e in events):
                raise PermanentBackendError("param names are invalid here")
            super().write(events)

    from typer.testing import CliRunner

    from unitrack.cli.app import app

    backend = Picky()
    with caplog.at_level(logging.WARNING, logger="unitrack"), ut.experiment_tracking("exp", quiet_config(tracking=FAST_RETRIES), backends=[backend]) as tracker:
        tracker.log_hyperparameters({"x": 1})
        log_steps(tracker, 20)
    run = json.loads((tracker.run_dir / "run.json").read_text())
    assert run["backends"]["picky"]["skipped_events"] == 1
    assert len(backend.points("loss")) == 20
    # what a backend refused is not delivered: never "in sync", and the count is said everywhere
    assert run["backends"]["picky"]["in_sync"] is False and run["backends"]["picky"]["owed"] == 0
    assert any("refused 1 event(s)" in r.getMessage() and "not in sync" in r.getMessage() for r in caplog.records)
    delivery = json.loads(CliRunner().invoke(app, ["show", tracker.run_id, "--json"]).stdout)["delivery"]["picky"]
    assert delivery["in_sync"] is False and delivery["skipped_events"] == 1
    assert "refused 1 event(s) for good" in CliRunner().invoke(app, ["show", tracker.run_id]).stdout
    (synced,) = json.loads(CliRunner().invoke(app, ["sync", tracker.run_id, "--json"]).stdout)
    assert (synced["backend"], synced["in_sync"], synced["refused"]) == ("picky", False, 1)
    assert "refused 1 event(s) for good" in CliRunner().invoke(app, ["sync", tracker.run_id]).stdout


def test_the_cursor_is_persisted_and_a_later_worker_resumes_from_it(store_dir: Path) -> None:
    from unitrack.dispatch import BackendWorker, WorkerSettings

    down = Down()
    config = quiet_config(tracking={**FAST_RETRIES, "finish_timeout": 0.5})
    with ut.experiment_tracking("exp", config, backends=[down]) as tracker:
        log_steps(tracker, 300)
    paths = RunStore(store_dir).resolve(tracker.run_id)
    owed_before = delivery_status(paths)["down"]["owed"]
    assert owed_before > 0

    class Back(Recorder):
        name = "down"  # the same backend, up again

    backend = Back()
    info = RunInfo(run_id=tracker.run_id, name="exp", experiment="exp", run_dir=paths.root, start_time=0.0)
    worker = BackendWorker(backend, paths, lambda: info, WorkerSettings(retry_max_wait=0.05))
    worker.run_until_caught_up(time.monotonic() + PATIENCE_S, None)
    assert backend.points("loss") == [(s, 1.0 / (s + 1)) for s in range(300)]
    assert backend.closed_with == "completed"
    assert delivery_status(paths)["down"]["in_sync"]
    again = Back()  # replaying a second time sends nothing: idempotent
    BackendWorker(again, paths, lambda: info, WorkerSettings()).run_until_caught_up(time.monotonic() + PATIENCE_S, None)
    assert again.points("loss") == []


def test_artifacts_reach_backends_that_store_them_only() -> None:
    class NoFiles(Recorder):
        name = "nofiles"
        capabilities = Capabilities(supports_artifacts=False)

        def put_artifact(self, path: Path, name: str) -> None:
            raise AssertionError("never called")

    backend = NoFiles()
    with ut.experiment_tracking("exp", quiet_config(), backends=[backend]) as tracker:
        (Path.cwd() / "f.txt").write_text("x")
        tracker.log_artifact("f.txt")
        tracker.log_metrics({"a": 1.0})
    assert not any(isinstance(e, ArtifactEvent) for e in backend.events)
    assert backend.points("a") == [(0, 1.0)]

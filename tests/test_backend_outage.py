"""An MLflow server that dies a third of the way through a run and comes back later: nothing waits, nothing is lost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import unitrack as ut
from backends.mlflow_server import MlflowServer
from tests.backend_services import mlflow_points, mlflow_run
from tests.conftest import quiet_config

STEPS = 3000


def test_an_mlflow_outage_never_reaches_the_loop_and_every_point_arrives_once(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from unitrack.cli.app import app

    server = MlflowServer(tmp_path / "server").start()
    try:
        config = quiet_config(
            tracking={
                "use_mlflow": True,
                "mlflow_tracking_uri": server.uri,
                "retry_attempts": 2,
                "retry_max_wait": 0.2,
                "breaker_cooldown": 1.0,
                "finish_timeout": 60,
            }
        )
        tracker = ut.ExperimentTracker("outage", config)
        slowest = 0.0
        for step in range(STEPS):
            if step == STEPS // 3:
                tracker.flush()
                server.stop()  # killed with its whole process group, mid-run
            started = time.perf_counter()
            tracker.log_metrics({"loss": 1.0 / (step + 1), "acc": step / STEPS}, step=step)
            slowest = max(slowest, time.perf_counter() - started)
            if step % 100 == 0:
                time.sleep(0.01)  # a training step's worth of time, now and then
        server.start()  # back, same port, same store
        tracker.finish()
        result = CliRunner().invoke(app, ["sync", tracker.run_id, "--json"])  # delivers what finish could not, if anything
        assert result.exit_code == 0, result.output
        shown = CliRunner().invoke(app, ["show", tracker.run_id, "--json"])
        assert json.loads(shown.stdout)["delivery"]["mlflow"]["in_sync"] is True

        run = mlflow_run(server.uri, tracker.run_id, "outage")
        for key, value in (("loss", lambda s: 1.0 / (s + 1)), ("acc", lambda s: s / STEPS)):
            assert mlflow_points(server.uri, run.info.run_id, key) == [(s, value(s)) for s in range(STEPS)]
        assert run.info.status == "FINISHED"
        # A call that waited for delivery would never return (the server only comes back after the loop);
        # one that waited on the worker's retries would take their back-off and breaker cool-downs
        # (1-8 s each). The bound only has to tell that apart from a loaded machine's scheduling delays.
        assert slowest < 10, f"a log_metrics call waited {slowest:.1f} s"
    finally:
        server.stop()

"""The read API: ``unitrack.runs`` / ``unitrack.open_run`` / ``RunView``, the one read path."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import unitrack as ut
from tests.conftest import quiet_config
from unitrack.cli.app import app
from unitrack.errors import RunNotFoundError


def make_run(name: str, params: dict[str, Any], metrics: list[dict[str, float]], **config: Any) -> str:
    with ut.experiment_tracking(name, quiet_config(**config)) as tracker:
        tracker.log_hyperparameters(params)
        for step, values in enumerate(metrics):
            tracker.log_metrics(values, step=step)
    return tracker.run_id


def ls_ids(*args: str) -> list[str]:
    result = CliRunner().invoke(app, ["ls", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [run["run_id"] for run in json.loads(result.stdout)]


@pytest.fixture
def sweep() -> dict[str, str]:
    return {
        "fast": make_run("sweep", {"lr": 0.5, "opt": "sgd"}, [{"acc": 0.5}, {"acc": 0.93}], tags={"team": "nlp"}),
        "slow": make_run("sweep", {"lr": 0.01, "opt": "adam"}, [{"acc": 0.6}, {"acc": 0.97}], tags={"team": "cv"}),
        "other": make_run("other", {"lr": 0.2, "opt": "sgd"}, [{"acc": 0.2}], tags=["baseline"]),
    }


def test_runs_are_newest_first_with_identity_params_tags_and_summary(sweep: dict[str, str]) -> None:
    found = ut.runs()
    assert [r.run_id for r in found] == [sweep["other"], sweep["slow"], sweep["fast"]]
    slow = found[1]
    assert (slow.name, slow.experiment, slow.status) == ("sweep", "sweep", "completed")
    assert slow.params == {"lr": 0.01, "opt": "adam"}
    assert slow.tags == {"team": "cv"}
    assert slow.metric_keys == ["acc"]
    assert slow.summary["acc"]["last"] == 0.97 and slow.summary["acc"]["min"] == 0.6 and slow.summary["acc"]["max"] == 0.97
    assert slow.start_time and slow.end_time and slow.end_time >= slow.start_time


@pytest.mark.parametrize(
    "expression",
    [
        "params.lr > 0.1",
        "metrics.acc >= 0.9 and params.opt = 'sgd'",
        "tags.team = 'nlp' or tags.team = 'cv'",
        "attributes.name LIKE 'sw%'",
        "not params.opt = 'sgd'",
    ],
)
def test_runs_filter_gives_what_ls_filter_gives(sweep: dict[str, str], expression: str) -> None:
    assert [r.run_id for r in ut.runs(expression)] == ls_ids("--filter", expression)


def test_runs_narrow_by_experiment_status_and_limit(sweep: dict[str, str]) -> None:
    assert [r.run_id for r in ut.runs(experiment="sweep")] == [sweep["slow"], sweep["fast"]]
    assert [r.run_id for r in ut.runs(status="completed", limit=1)] == [sweep["other"]]
    assert ut.runs(status=["failed", "crashed"]) == []
    assert [r.run_id for r in ut.runs(store=Path.cwd() / "store", experiment="other")] == [sweep["other"]]


def test_open_run_by_prefix_latest_and_a_clear_error(sweep: dict[str, str]) -> None:
    assert ut.open_run(sweep["slow"][:10]).run_id == sweep["slow"]
    assert ut.open_run("latest").run_id == sweep["other"]
    assert ut.open_run("latest~2").run_id == sweep["fast"]
    with pytest.raises(RunNotFoundError, match="nosuchrun"):
        ut.open_run("nosuchrun")


def test_history_is_numpy_in_logged_order_with_non_finite_values() -> None:
    with ut.experiment_tracking("curves", quiet_config()) as tracker:
        for epoch in range(2):
            for step in range(3):  # seed 003's loop: the step resets every epoch
                tracker.log_metrics({"loss": float(10 * epoch + step)}, step=step)
        tracker.log_metrics({"loss": math.nan}, step=3)
        tracker.log_metrics({"loss": math.inf, "other": -math.inf}, step=4)
    run = ut.open_run(tracker.run_id)
    steps, values = run.history("loss")
    assert steps.dtype == np.int64 and values.dtype == np.float64
    assert steps.tolist() == [0, 1, 2, 0, 1, 2, 3, 4]
    assert values[:6].tolist() == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0]
    assert math.isnan(values[6]) and values[7] == math.inf
    assert run.history("other")[1].tolist() == [-math.inf]
    assert run.metric_keys == ["loss", "other"]
    steps, values, times = run.history("loss", with_time=True)
    assert times.dtype == np.float64 and np.all(np.diff(times) >= 0)
    with pytest.raises(KeyError, match=r"'nope'.*loss"):
        run.history("nope")


def test_to_pandas_is_a_long_frame(sweep: dict[str, str]) -> None:
    frame = ut.open_run(sweep["slow"]).to_pandas()
    assert list(frame.columns) == ["key", "step", "time", "value"]
    assert frame["value"].tolist() == [0.6, 0.97] and frame["step"].tolist() == [0, 1]


def test_the_view_has_what_show_json_has(sweep: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["show", sweep["fast"], "--json"], catch_exceptions=False)
    shown = json.loads(result.stdout)
    run = ut.open_run(sweep["fast"])
    assert json.loads(json.dumps(run.to_dict(), default=str)) == shown
    listed = ut.runs(experiment="sweep")[-1]
    assert listed.info["host"] == shown["info"]["host"] and listed.git == shown["info"].get("git", {})
    assert listed.environment["python"] and listed.checkpoints == [] and listed.path == Path(shown["path"])
    assert listed.duration is not None and listed.command == shown["info"]["command"]


def test_the_notebook_example_in_the_docs_runs(tmp_path: Path) -> None:
    import re

    for lr in (0.1, 0.01):
        with ut.experiment_tracking("sweep", quiet_config()) as tracker:
            tracker.log_hyperparameters({"lr": lr})
            for step in range(5):
                tracker.log_metrics({"val/loss": lr * (5 - step)}, step=step)
    text = (Path(__file__).resolve().parent.parent / "docs" / "reading.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert code is not None
    import matplotlib

    matplotlib.use("Agg")
    exec(compile(code.group(1), "docs/reading.md", "exec"), {})
    assert (tmp_path / "sweep.png").stat().st_size > 0

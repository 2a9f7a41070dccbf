"""The command line: ls (filters), show, export, reindex, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import unitrack as ut
from tests.conftest import quiet_config
from unitrack.cli.app import app

runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def cli_json(*args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def make_run(name: str, params: dict[str, Any], metrics: list[dict[str, float]], **config: Any) -> str:
    with ut.experiment_tracking(name, quiet_config(**config)) as tracker:
        tracker.log_hyperparameters(params)
        for step, values in enumerate(metrics):
            tracker.log_metrics(values, step=step)
    return tracker.run_id


@pytest.fixture
def three_runs() -> dict[str, str]:
    return {
        "fast": make_run("sweep", {"lr": 0.5, "opt": "sgd"}, [{"acc": 0.5}, {"acc": 0.93}], tags={"team": "nlp"}),
        "slow": make_run("sweep", {"lr": 0.01, "opt": "adam"}, [{"acc": 0.6}, {"acc": 0.97}], tags={"team": "cv"}),
        "other": make_run("other", {"lr": 0.2, "opt": "sgd"}, [{"acc": 0.2}], tags=["baseline"]),
    }


def test_ls_json_lists_runs_newest_first_with_the_documented_fields(three_runs: dict[str, str]) -> None:
    runs = cli_json("ls")
    assert [r["run_id"] for r in runs] == [three_runs["other"], three_runs["slow"], three_runs["fast"]]
    fast = runs[2]
    for field in ("run_id", "name", "status", "message", "params", "metrics", "tags"):
        assert field in fast
    assert fast["status"] == "completed" and fast["name"] == "sweep"
    assert fast["params"] == {"lr": 0.5, "opt": "sgd"} and fast["metrics"] == {"acc": 0.93}
    assert fast["tags"] == {"team": "nlp"}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("params.lr > 0.1 and metrics.acc >= 0.9", ["fast"]),
        ("params.lr > 0.1 or metrics.acc >= 0.95", ["other", "slow", "fast"]),
        ("(tags.team = 'nlp' or tags.team = 'cv') and params.opt = 'adam'", ["slow"]),
        ("params.opt = 'sgd' and (metrics.acc < 0.5 or metrics.acc > 0.9)", ["other", "fast"]),
        ("attributes.name LIKE 'sw%' and not params.lr < 0.1", ["fast"]),
        ("metrics.acc >= 0.9 and metrics.acc < 0.95", ["fast"]),
        ("attributes.status IN ('failed', 'crashed')", []),
    ],
)
def test_ls_filter_grammar(three_runs: dict[str, str], expression: str, expected: list[str]) -> None:
    runs = cli_json("ls", "--filter", expression)
    assert [r["run_id"] for r in runs] == [three_runs[name] for name in expected]


def test_ls_tag_status_experiment_and_limit(three_runs: dict[str, str]) -> None:
    assert [r["run_id"] for r in cli_json("ls", "--tag", "team=cv")] == [three_runs["slow"]]
    assert [r["run_id"] for r in cli_json("ls", "--tag", "baseline")] == [three_runs["other"]]
    assert [r["run_id"] for r in cli_json("ls", "--tag", "team")] == [three_runs["slow"], three_runs["fast"]]
    assert len(cli_json("ls", "--status", "completed")) == 3
    assert cli_json("ls", "--status", "failed") == []
    assert {r["run_id"] for r in cli_json("ls", "--experiment", "sweep")} == {three_runs["slow"], three_runs["fast"]}
    assert len(cli_json("ls", "-n", "1")) == 1


def test_ls_by_git_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (repo / "train.py").write_text("print(2)\n")
    import os

    os.chdir(repo)
    inside = make_run("in-repo", {}, [{"acc": 1.0}])
    os.chdir(tmp_path)
    outside = make_run("outside", {}, [{"acc": 1.0}])
    assert [r["run_id"] for r in cli_json("ls", "--git", commit[:7])] == [inside]
    shown = cli_json("show", inside)
    assert shown["info"]["git"]["commit"] == commit and shown["info"]["git"]["dirty"] is True
    patch = (Path(shown["path"]) / "artifacts" / "git.patch").read_text()
    assert "-print(1)" in patch and "+print(2)" in patch
    assert cli_json("show", outside)["info"]["git"] == {}


def test_ls_table_is_readable(three_runs: dict[str, str]) -> None:
    result = cli("ls")
    assert result.exit_code == 0
    for run_id in three_runs.values():
        assert run_id in result.stdout
    assert "acc=0.93" in result.stdout and "3 run(s)" in result.stdout


def test_show_prints_everything_recorded(three_runs: dict[str, str]) -> None:
    run_id = three_runs["fast"]
    result = cli("show", "latest~2")  # the first of the three
    assert result.exit_code == 0, result.output
    for text in ("sweep", "completed", "lr", "0.5", "acc", "0.93", "team=nlp", "config hash"):
        assert text in result.stdout
    data = cli_json("show", run_id)
    assert data["status"] == "completed" and data["metric_summary"]["acc"]["max"] == 0.93
    assert data["params"]["opt"] == "sgd"


def test_export_has_every_point_with_its_step(tmp_path: Path) -> None:
    run_id = make_run("exp", {"lr": 0.1}, [{"loss": 1.0 / (s + 1)} for s in range(50)])
    data = cli_json("export", run_id)
    assert data["status"] == "completed"
    assert [(p["step"], p["value"]) for p in data["metric_history"]["loss"]] == [(s, 1.0 / (s + 1)) for s in range(50)]
    out = tmp_path / "run.json"
    assert cli("export", run_id, "--out", str(out)).exit_code == 0
    assert json.loads(out.read_text())["metric_history"]["loss"][49]["step"] == 49
    csv_lines = cli("export", run_id, "--csv").stdout.splitlines()
    assert csv_lines[0] == "metric,step,time,value" and len(csv_lines) == 51


def test_nan_metrics_export_as_strict_json() -> None:
    run_id = make_run("exp", {}, [{"loss": float("nan")}, {"loss": float("inf")}])
    result = cli("export", run_id, "--json")
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout
    assert [p["value"] for p in json.loads(result.stdout)["metric_history"]["loss"]] == ["nan", "inf"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "zzzz"], "error: no run 'zzzz'"),
        (["show", "../x"], "error: '../x' is not a run id"),
        (["ls", "--filter", "params.lr >"], "error: filter: expected a number"),
        (["ls", "--filter", "lr > 1"], "error: filter: 'lr' at column 1 is not a field"),
        (["export", "latest", "--json", "--csv"], "error: choose one of --json and --csv"),
    ],
)
def test_errors_are_one_clear_line_and_a_non_zero_exit(three_runs: dict[str, str], args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.output


def test_show_without_a_store_says_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["show", "abc", "--store", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "no unitrack store at" in result.stderr


def test_reindex_command(three_runs: dict[str, str], store_dir: Path) -> None:
    (store_dir / "index.sqlite").unlink()
    result = cli("reindex")
    assert result.exit_code == 0 and "indexed 3 run(s)" in result.stdout
    assert len(cli_json("ls")) == 3


def test_a_command_built_alone_behaves_as_among_all(three_runs: dict[str, str]) -> None:
    """main() has typer build only the command it runs: output, help and errors are the whole app's."""
    from unitrack.cli.app import _only

    for args in (["ls"], ["ls", "--help"], ["show", "latest", "--json"], ["ls", "--bogus"], ["show"]):
        alone, among = runner.invoke(_only(args[0]), args), runner.invoke(app, args)
        assert (alone.exit_code, alone.output) == (among.exit_code, among.output), args
    assert _only("nosuch") is app and len(app.registered_commands) > 10


def test_the_console_script_runs(three_runs: dict[str, str]) -> None:
    exe = Path(sys.executable).with_name("unitrack")
    done = subprocess.run([str(exe), "ls", "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 3

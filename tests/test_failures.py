"""A failed run says why: the exception in run.json (redacted), in `show`, `ls`, `explain`; one traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import unitrack as ut
from tests.conftest import quiet_config, run_script
from unitrack.cli.app import app

SECRETS = ("hunter2", "sk-live-123456")


def failing_run(message: str = "batch 7 has NaN labels") -> ut.ExperimentTracker:
    tracker = ut.ExperimentTracker("exp", quiet_config(), tags={"team": "a"})
    with pytest.raises(ValueError), tracker:
        tracker.log_metrics({"loss": 1.0})
        raise ValueError(message)
    return tracker


def test_a_failed_run_records_the_exception_type_message_and_traceback_redacted() -> None:
    tracker = failing_run(f"cannot reach postgresql://bob:{SECRETS[0]}@db/x with api_key={SECRETS[1]}")
    run = json.loads((tracker.run_dir / "run.json").read_text())
    assert run["status"] == "failed"
    error = run["error"]
    assert error["type"] == "ValueError"
    assert error["message"].startswith("cannot reach postgresql://bob:***REDACTED***@db/x with api_key=***REDACTED***")
    assert "Traceback (most recent call last)" in error["traceback"] and "raise ValueError(message)" in error["traceback"]
    assert error["where"].endswith("in failing_run") and "test_failures.py" in error["where"]
    stored = b"".join(p.read_bytes() for p in tracker.run_dir.rglob("*") if p.is_file())
    assert not any(secret.encode() in stored for secret in SECRETS)


def test_show_ls_and_show_json_say_why_a_run_failed() -> None:
    tracker = failing_run()
    shown = CliRunner().invoke(app, ["show", tracker.run_id])
    assert "failed: ValueError: batch 7 has NaN labels" in shown.stdout
    assert "raise ValueError(message)" in shown.stdout  # the traceback's end
    data = json.loads(CliRunner().invoke(app, ["show", tracker.run_id, "--json"]).stdout)
    assert data["error"]["type"] == "ValueError" and data["error"]["message"] == "batch 7 has NaN labels"
    assert "Traceback" in data["error"]["traceback"]
    listed = json.loads(CliRunner().invoke(app, ["ls", "--json"]).stdout)
    assert [r["error"] for r in listed] == ["ValueError: batch 7 has NaN labels"]
    assert "ValueError: batch 7 has NaN labels" in CliRunner().invoke(app, ["ls"]).stdout
    assert ut.runs(status="failed")[0].run_id == tracker.run_id


def test_a_completed_run_has_no_error_and_finish_in_an_except_block_records_it() -> None:
    with ut.experiment_tracking("exp", quiet_config()) as fine:
        fine.log_metrics({"loss": 1.0})
    assert "error" not in json.loads((fine.run_dir / "run.json").read_text())
    tracker = ut.ExperimentTracker("exp", quiet_config())
    try:
        {}["missing"]
    except KeyError:
        tracker.finish("failed")
    error = json.loads((tracker.run_dir / "run.json").read_text())["error"]
    assert (error["type"], error["message"]) == ("KeyError", "'missing'")


def test_an_uncaught_exception_at_exit_is_recorded_and_its_traceback_printed_once(tmp_path: Path) -> None:
    done = run_script(
        """
        import unitrack as ut
        tracker = ut.ExperimentTracker("script", {"monitoring": {"enabled": False}, "capture": {"packages": False}})
        print(tracker.run_id, flush=True)
        raise RuntimeError("out of patience")
        """,
        tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.count("Traceback (most recent call last)") == 1, done.stderr
    run_dir = tmp_path / "store" / "runs" / done.stdout.strip()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and run["error"]["type"] == "RuntimeError"


WITH_WANDB = """
import unitrack as ut
config = {"monitoring": {"enabled": False}, "capture": {"packages": False},
          "tracking": {"use_wandb": %s, "wandb_dir": "wb"}}
with ut.experiment_tracking("tb-once", config) as tracker:
    tracker.log_metrics({"loss": 1.0})
    tracker.flush()
    raise ValueError("boom")
"""


@pytest.mark.parametrize("use_wandb", [True, False])
def test_one_traceback_whether_wandb_is_on_or_off(tmp_path: Path, use_wandb: bool) -> None:
    done = run_script(WITH_WANDB % use_wandb, tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("Traceback (most recent call last)") == 1, done.stderr
    assert done.stderr.count("ValueError: boom") == 1, done.stderr


def test_explain_puts_the_exception_of_a_failed_run_first() -> None:
    with ut.experiment_tracking("exp", quiet_config()) as good:
        good.log_hyperparameters({"lr": 0.1})
        good.log_metrics({"loss": 0.5})
    bad = ut.ExperimentTracker("exp", quiet_config())
    with pytest.raises(ZeroDivisionError), bad:
        bad.log_hyperparameters({"lr": 0.1})
        bad.log_metrics({"loss": 0.9})
        print(1 / 0)
    result = CliRunner().invoke(app, ["explain", good.run_id, bad.run_id, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    first = data["causes"][0]
    assert first["title"] == "run B failed with ZeroDivisionError"
    assert first["evidence"][0] == "ZeroDivisionError: division by zero"
    assert first["evidence"][1].startswith("raised at ") and "test_failures.py" in first["evidence"][1]
    assert data["next_steps"][0].startswith("fix the ZeroDivisionError first")

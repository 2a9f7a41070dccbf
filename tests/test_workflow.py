"""commit of a command that does not use unitrack, clean, and the checkpoints the journal records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import unitrack as ut
from tests.conftest import journal, quiet_config
from unitrack.checkpoint.catalog import best_checkpoint, run_checkpoints
from unitrack.checkpoint.registry import CheckpointInfo
from unitrack.cli.app import app
from unitrack.store.runs import RunStore

runner = CliRunner()


def cli(*args: str, input: str | None = None) -> Any:
    return runner.invoke(app, list(args), input=input, catch_exceptions=False)


def make_run(status: str = "completed", acc: float = 0.5) -> str:
    tracker = ut.ExperimentTracker("clean", quiet_config())
    tracker.log_metrics({"acc": acc})
    tracker.finish(status)
    return tracker.run_id


def run_with_checkpoints(epochs: int, best: int) -> tuple[str, list[CheckpointInfo]]:
    """A finished run with real checkpoints (save_checkpoint), the one of epoch ``best`` marked best."""
    import torch

    tracker = ut.ExperimentTracker("clean", quiet_config(checkpointing={"async_save": False}))
    model = torch.nn.Linear(4, 4)
    saved = [tracker.save_checkpoint(model, epoch=e, step=e, is_best=e == best) for e in range(epochs)]
    tracker.finish()
    return tracker.run_id, [info for info in saved if info is not None]


def test_commit_of_a_plain_command_records_exit_code_output_duration_and_git(tmp_path: Path, store_dir: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    script = tmp_path / "plain.py"
    script.write_text("import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n")
    result = cli("commit", "-m", "no unitrack here", "--tag", "kind=plain", "--", sys.executable, str(script))
    assert result.exit_code == 3  # the command's exit code, passed through
    run_id = result.stdout.strip().splitlines()[-1]
    assert "to stdout" in result.stdout and "to stderr" in result.stderr
    shown = json.loads(cli("show", run_id, "--json").stdout)
    assert shown["status"] == "failed" and shown["message"] == "no unitrack here"
    assert shown["tags"] == {"kind": "plain"}
    assert shown["experiment"] == "plain"
    assert shown["info"]["exit_code"] == 3 and shown["info"]["command_duration"] > 0
    assert shown["info"]["command"] == [sys.executable, str(script)]
    assert shown["info"]["git"]["root"] == str(tmp_path)
    log = (store_dir / "runs" / run_id / "artifacts" / "output.log").read_text()
    assert "to stdout" in log and "to stderr" in log
    process = [e for e in journal(store_dir / "runs" / run_id) if e["kind"] == "process"]
    assert process and process[0]["exit_code"] == 3  # in the journal, so the backends get it too


def test_commit_without_a_command_is_a_clear_error() -> None:
    result = cli("commit", "-m", "nothing")
    assert result.exit_code == 1 and "no command to run" in result.stderr


def test_clean_dry_run_deletes_nothing(store_dir: Path) -> None:
    runs = [make_run() for _ in range(3)]
    result = cli("clean", "--keep-last", "1", "--dry-run")
    assert result.exit_code == 0
    assert "would free" in result.stdout and runs[0] in result.stdout and runs[2] not in result.stdout
    assert sorted(RunStore(store_dir).run_ids()) == sorted(runs)
    assert not (store_dir / "audit.jsonl").exists()


def test_clean_keep_last_removes_older_runs_and_audits_each(store_dir: Path) -> None:
    runs = [make_run() for _ in range(4)]
    result = cli("clean", "--keep-last", "2", "--yes")
    assert result.exit_code == 0 and "freed" in result.stdout
    assert RunStore(store_dir).run_ids() == runs[2:]
    assert [r["run_id"] for r in json.loads(cli("ls", "--json").stdout)] == runs[:1:-1]
    audit = [json.loads(line) for line in (store_dir / "audit.jsonl").read_text().splitlines()]
    assert [(a["action"], a["run_id"]) for a in audit] == [("remove_run", runs[1]), ("remove_run", runs[0])]
    assert all(a["bytes"] > 0 for a in audit)


def test_clean_asks_first_and_no_means_no(store_dir: Path) -> None:
    runs = [make_run() for _ in range(2)]
    result = cli("clean", "--keep-last", "1", input="n\n")
    assert result.exit_code == 1 and "nothing removed" in result.stdout
    assert RunStore(store_dir).run_ids() == runs


def test_clean_failed_only_touches_failed_runs(store_dir: Path) -> None:
    good, bad = make_run("completed"), make_run("failed")
    result = cli("clean", "--failed", "--yes", "--json")
    assert result.exit_code == 0
    assert [r["run_id"] for r in json.loads(result.stdout)["remove"]] == [bad]
    assert RunStore(store_dir).run_ids() == [good]


def test_clean_needs_a_criterion() -> None:
    make_run()
    result = cli("clean", "--yes")
    assert result.exit_code == 1 and "say what to clean" in result.stderr


def test_clean_checkpoints_only_keeps_the_run_and_its_best_checkpoint(store_dir: Path) -> None:
    store = RunStore(store_dir)
    run_id, saved = run_with_checkpoints(epochs=3, best=1)
    stray = store.layout.run(run_id).root / "checkpoints" / "mine"  # not unitrack's: no manifest, not registered
    stray.mkdir()
    result = cli("clean", "--keep-last", "0", "--checkpoints-only", "--yes")
    assert result.exit_code == 0, result.output
    assert [info.path.exists() for info in saved] == [False, True, False] and stray.exists()
    paths = store.layout.run(run_id)
    assert [c.name for c in run_checkpoints(paths.root)] == [saved[1].name]
    assert best_checkpoint(paths.root).name == saved[1].name
    removed = [e["name"] for e in journal(paths.root) if e["kind"] == "checkpoint_removed"]
    assert removed == [saved[0].name, saved[2].name]
    assert json.loads(cli("show", run_id, "--json").stdout)["status"] == "completed"
    assert cli("verify", run_id).exit_code == 0  # the registry no longer lists what clean deleted


def test_rollback_copies_the_best_checkpoint(store_dir: Path, tmp_path: Path) -> None:
    run_id, saved = run_with_checkpoints(epochs=2, best=0)
    result = cli("rollback", run_id, "--to", str(tmp_path / "back"), "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    copied = Path(written["checkpoint"])
    assert copied.name == saved[0].name
    assert (copied / "model.safetensors").read_bytes() == (saved[0].path / "model.safetensors").read_bytes()


@pytest.mark.parametrize("args", ["ls --json", "ls", "show latest"])
def test_output_into_a_closed_pipe_exits_quietly(args: str) -> None:
    make_run()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # `true` leaves before unitrack writes a byte, so every write meets a closed pipe
    done = subprocess.run(f"{sys.executable} -m unitrack.cli.app {args} | true", shell=True, capture_output=True, text=True, env=env)
    assert done.stderr == ""


def test_compare_has_a_weights_section_when_weights_exist(store_dir: Path) -> None:
    import torch

    ids = []
    for scale in (1.0, 2.0):
        with ut.experiment_tracking("w", quiet_config()) as tracker:
            model = torch.nn.Linear(4, 2)
            with torch.no_grad():
                model.weight.mul_(scale)
            tracker.snapshot_weights(model)
        ids.append(tracker.run_id)
    result = cli("compare", ids[0], ids[1], "--json")
    weights = json.loads(result.stdout)["weights"]
    assert {layer["name"] for layer in weights["layers"]} >= {"weight"}


def test_a_tracker_joins_the_run_commit_reserved_once(monkeypatch: pytest.MonkeyPatch, store_dir: Path) -> None:
    from unitrack.names import new_run_id

    reserved = new_run_id()
    monkeypatch.setenv("UNITRACK_RUN_ID", reserved)
    with ut.experiment_tracking("joined", quiet_config()) as first:
        pass
    with ut.experiment_tracking("second", quiet_config()) as second:
        pass
    assert first.run_id == reserved and second.run_id != reserved
    assert "UNITRACK_RUN_ID" not in os.environ  # the script's own child processes do not claim it again


def test_a_reserved_run_id_that_exists_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = make_run()
    monkeypatch.setenv("UNITRACK_RUN_ID", taken)
    with pytest.raises(ut.UnitrackError, match="already exists"):
        ut.ExperimentTracker("again", quiet_config())


def test_clean_older_than_and_status(store_dir: Path) -> None:
    old, _recent = make_run("interrupted"), make_run("interrupted")
    store = RunStore(store_dir)
    run_json = store.layout.run(old).run_json
    data = json.loads(run_json.read_text())
    data["start_time"] -= 40 * 86400  # started 40 days ago
    run_json.write_text(json.dumps(data))
    store.reindex()
    planned = json.loads(cli("clean", "--older-than", "30d", "--status", "interrupted", "--dry-run", "--json").stdout)
    assert [r["run_id"] for r in planned["remove"]] == [old]
    bad = cli("clean", "--older-than", "a month")
    assert bad.exit_code == 1 and "--older-than 'a month'" in bad.stderr


def test_sigterm_to_commit_reaches_the_command_and_the_run_records_it(tmp_path: Path, store_dir: Path) -> None:
    import signal

    script = tmp_path / "wait.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    parent = subprocess.Popen(
        [sys.executable, "-m", "unitrack.cli.app", "commit", "-m", "stopped", "--", sys.executable, str(script)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
    parent.send_signal(signal.SIGTERM)
    out, _ = parent.communicate(timeout=60)
    assert parent.returncode == 128 + signal.SIGTERM
    shown = json.loads(cli("show", out.strip().splitlines()[-1], "--json").stdout)
    assert shown["status"] == "interrupted" and shown["info"]["exit_code"] == -signal.SIGTERM


def test_commit_config_applies_to_the_run_of_a_plain_command(tmp_path: Path) -> None:
    config = tmp_path / "unitrack.yaml"
    config.write_text("tags: {team: vision}\ncapture: {packages: false}\n")
    result = cli("commit", "-m", "configured", "--tag", "stage=2", "--config", str(config), "--", sys.executable, "-c", "pass")
    assert result.exit_code == 0, result.output
    shown = json.loads(cli("show", result.stdout.strip().splitlines()[-1], "--json").stdout)
    assert shown["tags"] == {"team": "vision", "stage": "2"}
    assert shown["info"]["config"]["capture"]["packages"] is False


def test_commit_delivers_the_command_outcome_to_the_runs_backends(tmp_path: Path) -> None:
    from tests.backend_services import tensorboard_scalars

    config = tmp_path / "unitrack.yaml"
    config.write_text(f"tracking: {{use_tensorboard: true, tensorboard_log_dir: {tmp_path / 'tb'}}}\ncapture: {{packages: false}}\n")
    # the command's usage is sampled at once, then every second: two seconds leave the sampler time to start
    result = cli("commit", "-m", "to tb", "--config", str(config), "--", sys.executable, "-c", "import time; time.sleep(2)")
    assert result.exit_code == 0, result.output
    run_id = result.stdout.strip().splitlines()[-1]
    shown = json.loads(cli("show", run_id, "--json").stdout)
    assert shown["delivery"]["tensorboard"]["in_sync"] is True  # no `unitrack sync` needed
    ((run_name, scalars),) = tensorboard_scalars(tmp_path / "tb").items()
    assert run_id in run_name
    assert any(tag.startswith("system/") for tag in scalars)  # the command's usage, sampled by commit

"""Optuna studies through UnitrackOptunaCallback: one run per trial, pruning, threads, processes, backends."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from backends.mlflow_server import MlflowServer  # noqa: E402
from tests.backend_services import mlflow_run, tensorboard_scalars  # noqa: E402
from tests.conftest import quiet_config  # noqa: E402
from unitrack.integrations.optuna import UnitrackOptunaCallback  # noqa: E402
from unitrack.integrations.studies import read_study  # noqa: E402
from unitrack.store.runs import RunStore  # noqa: E402

EPOCHS = 6
optuna.logging.set_verbosity(optuna.logging.WARNING)


def curve(lr: float, epoch: int) -> float:
    """A validation loss that falls faster with a larger lr: small lrs are the ones a pruner stops."""
    return 1.0 / (1.0 + lr * 10 * (epoch + 1))


def make_objective(cb: UnitrackOptunaCallback, fail_trial: int | None = None) -> Any:
    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        width = trial.suggest_int("width", 4, 64)
        with cb.track(trial) as tracker:
            value = math.nan
            for epoch in range(EPOCHS):
                value = curve(lr, epoch)
                tracker.log_metrics({"val/loss": value, "val/acc": 1 - value, "width": width}, step=epoch)
                if trial.number == fail_trial and epoch == 0:  # before the pruner may act (warm-up)
                    raise ValueError("the objective broke")
            return value

    return objective


def runs_by_trial(store_dir: Path) -> dict[int, Any]:
    store = RunStore(store_dir)
    runs = [store.load(run_id) for run_id in store.run_ids()]
    by_trial: dict[int, Any] = {}
    for run in runs:
        number = int(run.tags["optuna.trial"])
        assert number not in by_trial, f"trial {number} has two runs"
        by_trial[number] = run
    return by_trial


def metric_curve(store_dir: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    lines = (store_dir / "runs" / run_id / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    return [(e["step"], e["values"][key]) for e in events if e["kind"] == "metric" and key in e["values"]]


def median_study(name: str = "sweep", storage: str | None = None) -> optuna.Study:
    return optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=3),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )


def test_a_study_of_eight_trials_gives_eight_runs_with_params_tags_statuses_curves_and_values(store_dir: Path) -> None:
    cb = UnitrackOptunaCallback("sweep", quiet_config(), monitor="val/loss")
    study = median_study()
    study.optimize(make_objective(cb, fail_trial=5), n_trials=8, callbacks=[cb], catch=(ValueError,))

    runs = runs_by_trial(store_dir)
    assert sorted(runs) == list(range(8))
    expected_status = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed"}
    states = [t.state.name for t in study.trials]
    assert "PRUNED" in states and states[5] == "FAIL"  # the pruner did stop some, and trial 5 broke
    failed = json.loads((store_dir / "runs" / runs[5].run_id / "run.json").read_text())
    assert failed["error"]["type"] == "ValueError" and "the objective broke" in failed["error"]["message"]
    for trial in study.trials:
        run = runs[trial.number]
        assert run.status == expected_status[trial.state.name]
        assert run.experiment == "sweep"
        assert run.tags["optuna.study"] == "sweep" and run.tags["optuna.direction"] == "minimize"
        assert run.params["lr"] == trial.params["lr"] and run.params["width"] == trial.params["width"]
        assert run.params["optuna/trial"] == trial.number
        points = metric_curve(store_dir, run.run_id, "val/loss")
        reported = sorted(trial.intermediate_values.items())
        assert points[: len(reported)] == [(step, pytest.approx(v)) for step, v in reported]
        if trial.state.name == "COMPLETE":
            assert len(points) == EPOCHS and points[-1][1] == pytest.approx(trial.value)
            assert metric_curve(store_dir, run.run_id, "optuna/value") == [(EPOCHS - 1, pytest.approx(trial.value))]
        if trial.state.name == "PRUNED":
            assert len(points) < EPOCHS  # stopped where the pruner said so

    record = read_study("sweep", store_dir)
    assert record is not None
    assert record["direction"] == "minimize" and record["sampler"] == "RandomSampler" and record["pruner"] == "MedianPruner"
    assert record["best_trial"] == study.best_trial.number and record["best_value"] == pytest.approx(study.best_value)
    assert record["best_run_id"] == runs[study.best_trial.number].run_id
    assert {int(n): t["status"] for n, t in record["trials"].items()} == {
        t.number: expected_status[t.state.name] for t in study.trials
    }


def test_ls_groups_runs_by_study_and_names_the_best_trial(store_dir: Path) -> None:
    from typer.testing import CliRunner

    from unitrack.cli.app import app

    cb = UnitrackOptunaCallback("sweep", quiet_config(), monitor="val/loss")
    for name in ("first", "second"):
        median_study(name).optimize(make_objective(cb), n_trials=3, callbacks=[cb])
    result = CliRunner().invoke(app, ["ls", "--group-by", "study", "--json"])
    assert result.exit_code == 0, result.output
    groups = {g["key"]: g for g in json.loads(result.output)}
    assert sorted(groups) == ["first", "second"]
    assert all(len(g["runs"]) == 3 and g["study"]["best_trial"] is not None for g in groups.values())
    table = CliRunner().invoke(app, ["ls", "--group-by", "study"])
    assert "first  3 run(s)  minimize, best trial" in table.output and "pruned" not in table.output.split("first")[0]


def test_two_threads_give_one_run_per_trial(store_dir: Path) -> None:
    cb = UnitrackOptunaCallback("sweep", quiet_config(), monitor="val/loss")
    study = median_study()
    study.optimize(make_objective(cb), n_trials=8, n_jobs=2, callbacks=[cb])
    runs = runs_by_trial(store_dir)
    assert sorted(runs) == list(range(8))
    assert all(run.status != "running" for run in runs.values())
    record = read_study("sweep", store_dir)
    assert record is not None and sorted(int(n) for n in record["trials"]) == list(range(8))


WORKER = """
import sys, math, optuna
sys.path.insert(0, {root!r})
from tests.integrations.test_optuna import make_objective, median_study
from tests.conftest import quiet_config
from unitrack.integrations.optuna import UnitrackOptunaCallback
optuna.logging.set_verbosity(optuna.logging.WARNING)
cb = UnitrackOptunaCallback("sweep", quiet_config(), monitor="val/loss")
median_study(storage={storage!r}).optimize(make_objective(cb), n_trials=4, callbacks=[cb])
"""


def test_two_processes_sharing_one_sqlite_storage_give_one_run_per_trial(tmp_path: Path, store_dir: Path) -> None:
    from tests.conftest import start_script

    root = str(Path(__file__).resolve().parents[2])
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    median_study(storage=storage)  # create it once, so the workers only load it
    code = WORKER.format(root=root, storage=storage)
    workers = [start_script(code, tmp_path, str(i)) for i in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]
    runs = runs_by_trial(store_dir)
    assert sorted(runs) == list(range(8))  # none lost, none duplicated
    study = optuna.load_study(study_name="sweep", storage=storage)
    for trial in study.trials:
        assert runs[trial.number].params["lr"] == trial.params["lr"]
    record = read_study("sweep", store_dir)
    assert record is not None and len(record["trials"]) == 8 and record["best_trial"] == study.best_trial.number


def test_without_a_with_block_the_callback_closes_each_run_with_the_trials_state(store_dir: Path) -> None:
    cb = UnitrackOptunaCallback("sweep", quiet_config(), monitor="val/loss")

    def objective(trial: optuna.Trial) -> float:
        tracker = cb.start(trial)
        for epoch in range(3):
            tracker.log_metrics({"val/loss": 1.0 / (epoch + 1 + trial.number)}, step=epoch)
        if trial.number == 1:
            raise RuntimeError("no with block, still recorded")
        return 1.0 / (3 + trial.number)

    study = optuna.create_study(study_name="plain")
    study.optimize(objective, n_trials=3, callbacks=[cb], catch=(RuntimeError,))
    runs = runs_by_trial(store_dir)
    assert {n: r.status for n, r in runs.items()} == {0: "completed", 1: "failed", 2: "completed"}


def test_ask_and_tell_gives_one_closed_run_per_trial(store_dir: Path) -> None:
    cb = UnitrackOptunaCallback("sweep", quiet_config(), monitor="val/loss")
    study = optuna.create_study(study_name="asked", direction="maximize")
    for _ in range(3):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1)
        with cb.track(trial) as tracker:
            tracker.log_metrics({"score": x}, step=0)
        study.tell(trial, x)
    cb.close()
    runs = runs_by_trial(store_dir)
    assert sorted(runs) == [0, 1, 2] and all(r.status == "completed" for r in runs.values())
    record = read_study("asked", store_dir)
    assert record is not None and record["direction"] == "maximize"
    assert record["best_value"] == pytest.approx(study.best_value)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


def test_with_mlflow_and_tensorboard_every_trials_run_is_in_each(tmp_path: Path, store_dir: Path, mlflow_server: MlflowServer) -> None:
    tracking = {"backends": ["local", "mlflow", "tensorboard"], "mlflow_tracking_uri": mlflow_server.uri, "tensorboard_log_dir": str(tmp_path / "tb")}
    cb = UnitrackOptunaCallback("sweep-mlflow", quiet_config(tracking=tracking), monitor="val/loss")
    study = median_study("with-backends")
    study.optimize(make_objective(cb), n_trials=5, callbacks=[cb])
    runs = runs_by_trial(store_dir)
    assert sorted(runs) == list(range(5))
    scalars = tensorboard_scalars(tmp_path / "tb")
    for trial in study.trials:
        run = runs[trial.number]
        remote = mlflow_run(mlflow_server.uri, run.run_id, "sweep-mlflow")
        assert remote.data.tags["optuna.trial"] == str(trial.number)
        expected = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[trial.state.name]
        assert remote.info.status == expected
        if expected == "KILLED":
            assert remote.data.tags["unitrack.status"] == "pruned"
        (tb_run,) = [name for name in scalars if name.endswith(run.run_id)]
        assert len(scalars[tb_run]["val/loss"]) == len(metric_curve(store_dir, run.run_id, "val/loss"))


def test_the_sweep_example_runs_and_prunes(tmp_path: Path, store_dir: Path) -> None:
    from tests.test_examples import run_example

    out = run_example("sweep_digits.py", "--trials", "6", "--epochs", "4", cwd=tmp_path)
    assert "6 trials:" in out and "best trial" in out
    runs = runs_by_trial(store_dir)
    assert sorted(runs) == list(range(6))
    assert read_study("digits-sweep", store_dir) is not None

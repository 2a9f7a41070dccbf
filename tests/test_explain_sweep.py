"""``explain --sweep``: a synthetic sweep of 30 real runs in which only the learning rate matters."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import unitrack as ut
from tests.conftest import quiet_config
from unitrack.analysis.sweep import METHOD, SweepError, sweep_importance
from unitrack.cli.app import app

IRRELEVANT = ("batch_size", "dropout", "optimizer", "seed", "warmup")


@pytest.fixture
def sweep(store_dir: Path) -> Path:
    """30 runs: lr log-uniform over 1e-4..1e-1 decides val_acc (a bump, not a parabola, with noise);
    batch size, dropout, optimizer, seed and warm-up are drawn too but do nothing; out_dir differs per run."""
    rng = np.random.default_rng(2026)
    for i in range(30):
        lr = float(10 ** rng.uniform(-4, -1))
        params = {
            "lr": lr, "batch_size": int(rng.choice([16, 32, 64, 128])), "dropout": float(rng.uniform(0, 0.5)),
            "optimizer": str(rng.choice(["sgd", "adam", "adamw"])), "seed": i, "warmup": int(rng.integers(0, 500)),
            "out_dir": f"runs/{i}", "epochs": 3,
        }  # fmt: skip
        best = 0.95 - 0.4 * abs(math.log10(lr) + 2.5) ** 1.5 / 1.5**1.5 + float(rng.normal(0, 0.01))
        with ut.experiment_tracking("lr-sweep", quiet_config()) as tracker:
            tracker.log_hyperparameters(params)
            for step in range(3):
                tracker.log_metrics({"val_acc": best - 0.1 * (2 - step), "train_loss": 2.0 / (step + 1)}, step=step)
    with ut.experiment_tracking("other", quiet_config()) as tracker:  # another experiment: not part of the sweep
        tracker.log_hyperparameters({"lr": 0.5})
        tracker.log_metrics({"val_acc": 0.1}, step=0)
    return store_dir


def test_only_the_learning_rate_matters(sweep: Path) -> None:
    result = ut.explain_sweep("lr-sweep", store=sweep)
    assert (result.experiment, result.metric, result.value, result.runs) == ("lr-sweep", "val_acc", "max", 30)
    assert result.method == METHOD and "fANOVA-style" in result.method
    ranked = {p.key: p.importance for p in result.params}
    assert result.params[0].key == "lr" and ranked["lr"] > 0.7, ranked
    for key in IRRELEVANT:
        assert ranked[key] < 0.05, ranked
    assert result.bookkeeping == [{"key": "out_dir", "reason": "name matches '*dir'"}]
    assert result.constant == ["epochs"]
    lr = result.params[0]
    assert lr.scale == "log bins" and sum(level.runs for level in lr.levels) == 30
    means = [level.mean for level in lr.levels]
    assert max(means) > means[0] and max(means) > means[-1]  # the bump: best in the middle
    # deterministic for a given set of runs, whatever order they come in
    views = ut.runs(store=sweep, experiment="lr-sweep")
    assert sweep_importance(list(reversed(views))).to_dict() == result.to_dict()


def test_cli_shows_the_ranking_and_the_metric_against_the_top_params(sweep: Path) -> None:
    runner = CliRunner()
    table = runner.invoke(app, ["explain", "--sweep", "lr-sweep", "--store", str(sweep)])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == "experiment lr-sweep: 30 runs, val_acc (max per run)"
    assert "fANOVA-style" in table.stdout
    ranked = [line.split()[0] for line in lines if line.startswith("  ") and "%" in line]
    assert ranked[0] == "lr" and ranked[-1] == "unexplained"
    assert "val_acc against lr (log bins)" in table.stdout
    assert "not ranked (bookkeeping): out_dir (name matches '*dir')" in table.stdout
    data = json.loads(runner.invoke(app, ["explain", "--sweep", "lr-sweep", "--store", str(sweep), "--json"]).stdout)
    assert data["params"][0]["key"] == "lr" and data["method"] == METHOD
    by_loss = json.loads(
        runner.invoke(app, ["explain", "--sweep", "lr-sweep", "--metric", "train_loss", "--store", str(sweep), "--json"]).stdout
    )
    assert by_loss["metric"] == "train_loss" and by_loss["value"] == "min"
    assert all(p["importance"] == 0.0 for p in by_loss["params"])  # the same in every run: nothing to explain


def test_bad_requests_say_what_is_wrong(sweep: Path) -> None:
    runner = CliRunner()
    for args, message in (
        (["explain", "--sweep", "nope"], "no finished run of experiment 'nope'"),
        (["explain", "latest"], "give two runs (explain A B) or --sweep EXPERIMENT"),
        (["explain", "latest", "--sweep", "lr-sweep"], "--sweep takes no runs"),
        (["explain", "--sweep", "other"], "1 run(s) have a finite val_acc"),
    ):
        result = runner.invoke(app, [*args, "--store", str(sweep)])
        assert result.exit_code == 1 and message in result.stderr, (args, result.stderr)
    with pytest.raises(SweepError, match="pass --metric KEY"):
        sweep_importance([])


def test_an_optuna_study_is_ranked_the_same_way() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_int("batch_size", 16, 128, log=True)
        trial.suggest_categorical("optimizer", ["sgd", "adam"])
        trial.suggest_float("dropout", 0.0, 0.5)
        return 0.95 - 0.4 * abs(math.log10(lr) + 2.5) ** 1.5 / 1.5**1.5

    study = optuna.create_study(study_name="lr-study", direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3))
    study.optimize(objective, n_trials=30)
    result = ut.explain_sweep(study)
    assert (result.experiment, result.metric, result.runs) == ("lr-study", "value", 30)
    ranked = {p.key: p.importance for p in result.params}
    assert result.params[0].key == "lr" and ranked["lr"] > 0.7, ranked
    assert all(ranked[key] < 0.05 for key in ("batch_size", "optimizer", "dropout")), ranked


def test_a_study_run_through_the_optuna_callback_is_ranked_by_its_objective(store_dir: Path) -> None:
    import optuna

    from unitrack.integrations.optuna import UnitrackOptunaCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    callback = UnitrackOptunaCallback("tuning", quiet_config(), monitor="val_acc")

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_categorical("width", [16, 32, 64])
        value = 0.95 - 0.4 * abs(math.log10(lr) + 2.5) ** 1.5 / 1.5**1.5
        with callback.track(trial) as tracker:
            tracker.log_metrics({"val_acc": value - 0.1}, step=0)
            tracker.log_metrics({"val_acc": value}, step=1)
        return value

    sampler, pruner = optuna.samplers.RandomSampler(seed=5), optuna.pruners.ThresholdPruner(lower=0.6)
    study = optuna.create_study(study_name="s1", direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective, n_trials=24, callbacks=[callback])
    callback.close()
    result = json.loads(CliRunner().invoke(app, ["explain", "--sweep", "tuning", "--store", str(store_dir), "--json"]).stdout)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert (result["metric"], result["runs"]) == ("optuna/value", 24 - len(pruned))
    assert pruned and [s["why"] for s in result["skipped"]] == ["pruned"] * len(pruned)
    assert next(p["key"] for p in result["params"]) == "lr"
    assert {p["key"]: p["importance"] for p in result["params"]}["width"] < 0.05
    assert {"key": "optuna/trial", "reason": "name matches 'trial'"} in result["bookkeeping"]


def test_the_dashboard_api_answers_what_the_cli_does(sweep: Path) -> None:
    from tests.ui_harness import http, ui_server

    cli = json.loads(CliRunner().invoke(app, ["explain", "--sweep", "lr-sweep", "--store", str(sweep), "--json"]).stdout)
    with ui_server(sweep) as (url, _):
        answer = http(f"{url}api/sweep?experiment=lr-sweep")
        assert answer.status == 200 and answer.json() == cli
        by_metric = http(f"{url}api/sweep?experiment=lr-sweep&metric=train_loss").json()
        assert by_metric["metric"] == "train_loss"
        missing = http(f"{url}api/sweep?experiment=nope")
        assert missing.status >= 400 and "no finished run of experiment 'nope'" in missing.body.decode()

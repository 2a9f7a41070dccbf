"""``read_run`` gives the same view of a local run that ``show`` and ``export`` print."""

from __future__ import annotations

from pathlib import Path

import pytest

import unitrack as ut
from tests.conftest import quiet_config
from unitrack.errors import RunNotFoundError
from unitrack.readers import read_run
from unitrack.store.runs import RunStore


def test_a_local_run_reads_back_with_params_history_and_source(store_dir: Path) -> None:
    with ut.experiment_tracking("readme", quiet_config()) as tracker:
        tracker.log_hyperparameters({"lr": 0.01})
        for step in range(3):
            tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        run_id = tracker.run_id
    view = read_run(run_id[:6], RunStore(store_dir))
    assert view.run_id == run_id and view.source == "local"
    assert view.record["params"]["lr"] == 0.01
    assert [p["value"] for p in view.metric_history["loss"]] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert view.record["metrics"]["loss"] == pytest.approx(1 / 3)


def test_an_unknown_local_ref_names_it(store_dir: Path) -> None:
    with pytest.raises(RunNotFoundError, match="nosuchrun"):
        read_run("nosuchrun", RunStore(store_dir))

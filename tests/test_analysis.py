"""compare's evidence and the rule engine on runs logged in-process (no model, no git)."""

from __future__ import annotations

import random
from typing import Any

import pytest

import unitrack as ut
from tests.conftest import quiet_config
from unitrack.analysis.bookkeeping import bookkeeping_reason, split_bookkeeping
from unitrack.analysis.diffing import settings_diff
from unitrack.analysis.explain import explain
from unitrack.analysis.metrics import diverged_at
from unitrack.config import AnalysisConfig
from unitrack.goals import goal
from unitrack.store.runs import RunStore


def run(params: dict[str, Any], series: dict[str, list[float]]) -> str:
    with ut.experiment_tracking("analysis", quiet_config()) as tracker:
        tracker.log_hyperparameters(params)
        for step in range(max(len(v) for v in series.values())):
            tracker.log_metrics({k: v[step] for k, v in series.items() if step < len(v)}, step=step)
    return tracker.run_id


def evidence(a: str, b: str, store_dir: Any, **settings: Any) -> dict[str, Any]:
    return ut.gather_evidence(RunStore(store_dir), a, b, AnalysisConfig(**settings))


def test_numbers_within_tolerance_are_not_changes_and_bookkeeping_is_set_apart() -> None:
    diff = settings_diff(
        {"lr": 0.1, "wd": 1e-4, "log_dir": "/tmp/a", "layers": [64, 64], "log_every": 10, "report": "out/a.json"},
        {"lr": 0.1 + 1e-12, "wd": 2e-4, "log_dir": "/tmp/b", "layers": [64, 128], "log_every": 50, "report": "out/b.json"},
        rel_tolerance=1e-6, abs_tolerance=0.0,
    )  # fmt: skip
    defaults = AnalysisConfig()
    split = split_bookkeeping(diff, defaults.ignore_params, defaults.keep_params)
    assert [c["key"] for c in split["changed"]] == ["layers", "wd"]
    assert split["changed"][1]["ratio"] == pytest.approx(2.0)
    reasons = {e["key"]: e["reason"] for e in split["bookkeeping"]}
    assert reasons == {"log_dir": "name matches '*dir'", "log_every": "name matches 'log_*'", "report": "value is a path"}
    # a path that says what the model or data is matters; the patterns are the config's to change
    assert bookkeeping_reason("model_name_or_path", ["bert-base", "roberta/base"], defaults.ignore_params, defaults.keep_params) is None
    assert bookkeeping_reason("data/num_workers", [0, 4], defaults.ignore_params, defaults.keep_params) is not None
    assert bookkeeping_reason("hidden", [32, 64], ["hidden"], []) == "name matches 'hidden'"
    assert bookkeeping_reason("started", ["2026-01-02T10:00:00"], [], []) == "value is a timestamp"
    assert bookkeeping_reason("optimizer", ["sgd", "adam"], defaults.ignore_params, defaults.keep_params) is None


def test_metric_goals_and_divergence() -> None:
    assert goal("val/acc") == "max" and goal("train_loss") == "min" and goal("progress/throughput") is None
    points = [{"step": s, "value": v} for s, v in enumerate([1.0, 0.5, 0.4, 2.0, float("nan")])]
    assert diverged_at(points) == 3
    assert diverged_at([*points[:3], {"step": 3, "value": float("inf")}]) == 3  # non-finite, no climb before it
    # noisy minibatch losses that end near their low are not diverging, whatever a single batch did
    rng = random.Random(0)
    noisy = [{"step": s, "value": 2.0 * 0.97**s * rng.uniform(0.3, 1.7)} for s in range(100)]
    assert diverged_at(noisy) is None
    exploding = noisy[:50] + [{"step": s, "value": 0.5 * 1.2 ** (s - 50)} for s in range(50, 100)]
    assert diverged_at(exploding) is not None and 50 <= diverged_at(exploding) <= 65


def test_metrics_last_best_same_step_and_winner(store_dir: Any) -> None:
    a = run({"lr": 0.1}, {"val_acc": [0.5, 0.8, 0.7], "val_loss": [1.0, 0.6, 0.7]})
    b = run({"lr": 0.1}, {"val_acc": [0.6, 0.9], "val_loss": [0.9, 0.4]})
    metrics = {m["key"]: m for m in evidence(a, b, store_dir)["metrics"]}
    acc = metrics["val_acc"]
    assert (acc["a"]["last"], acc["a"]["best"], acc["a"]["best_step"]) == (0.7, 0.8, 1)
    assert acc["same_step"] == {"step": 1, "a": 0.8, "b": 0.9}
    assert acc["winner"] == "b" and acc["rel_change"] == pytest.approx(0.9 / 0.7 - 1)
    assert metrics["val_loss"]["winner"] == "b"


def _curve(seed: int, scale: float = 1.0, points: int = 20) -> list[float]:
    rng = random.Random(seed)
    return [0.95 - 0.5 * scale * 0.7**step + rng.gauss(0, 0.004) for step in range(points)]


def test_only_the_seed_differs_reads_as_noise_with_its_band(store_dir: Any) -> None:
    a = run({"lr": 0.1, "seed": 1, "out_dir": "runs/a"}, {"val_acc": _curve(1)})
    b = run({"lr": 0.1, "seed": 2, "out_dir": "runs/b", "log_every": 5}, {"val_acc": _curve(2)})
    result = explain(evidence(a, b, store_dir), provider="rules")
    top = result.causes[0]
    assert top.title == "only the seed differs: within noise"
    assert "seed 1 → 2" in top.evidence
    assert any("within the noise band ±" in fact and "tail fluctuation" in fact for fact in top.evidence)
    assert result.noise is not None and result.noise["within"] and 0.005 < result.noise["band"] < 0.05
    assert [e["key"] for e in result.bookkeeping] == ["log_every", "out_dir"]
    assert all("out_dir" not in c.keys and "log_every" not in c.keys for c in result.causes)
    assert any("seeds" in step for step in result.next_steps)


def test_a_single_point_per_run_does_not_pretend_to_measure_noise(store_dir: Any) -> None:
    a = run({"lr": 0.1, "seed": 1}, {"val_acc": [0.900]})
    b = run({"lr": 0.1, "seed": 2}, {"val_acc": [0.905]})
    result = explain(evidence(a, b, store_dir), provider="rules")
    assert result.causes[0].title == "only the seed differs: noise not measurable"


def test_unknown_params_are_ranked_by_evidence_not_a_flat_prior(store_dir: Any) -> None:
    a = run({"alpha": 1.0, "beta_thing": "x", "seed": 1}, {"val_acc": _curve(1)})
    moved = run({"alpha": 4.0, "beta_thing": "x", "seed": 1}, {"val_acc": _curve(1, scale=3.0)[:5] + [v - 0.1 for v in _curve(1)[5:]]})
    still = run({"alpha": 2.0, "beta_thing": "x", "seed": 2}, {"val_acc": _curve(2)})
    moved_cause = explain(evidence(a, moved, store_dir), provider="rules").causes[0]
    still_result = explain(evidence(a, still, store_dir), provider="rules")
    assert moved_cause.keys == ["alpha"] and moved_cause.score > 0.8
    assert any("beyond the noise band" in fact for fact in moved_cause.evidence)
    assert still_result.causes[0].title.startswith("within noise: no recorded change moved val_acc beyond ±")
    alpha = next(c for c in still_result.causes if c.keys == ["alpha"])
    assert alpha.score < 0.3 < moved_cause.score


def test_lr_divergence_and_batch_size_are_named_with_numbers(store_dir: Any) -> None:
    a = run({"lr": 0.001, "batch_size": 64}, {"train_loss": [1.0, 0.8, 0.6, 0.5], "val_acc": [0.5, 0.6, 0.7, 0.8]})
    b = run({"lr": 0.05, "batch_size": 32}, {"train_loss": [1.0, 0.5, 4.0, 9.0], "val_acc": [0.5, 0.6, 0.3, 0.2]})
    result = explain(evidence(a, b, store_dir), provider="rules")
    top = result.causes[0]
    assert top.title == "learning rate ×50 with the loss diverging"
    assert top.evidence[:2] == ["lr 0.001 → 0.05 (×50)", "train_loss diverging after step 2"]
    assert "val_acc 0.8 → 0.2 (-75.0%)" in top.evidence[2]
    batch = next(c for c in result.causes if c.title.startswith("batch size"))
    assert batch.title == "batch size halved" and batch.evidence[0] == "batch_size 64 → 32 (÷2)"
    assert any("warm-up" in step for step in result.next_steps)

"""``watch(model, activations_every=N)``: per-module output statistics, without changing training."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from tests.conftest import journal, quiet_config
from unitrack import ExperimentTracker


def net(dead_bias: float | None = None) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4), nn.Tanh())
    if dead_bias is not None:
        with torch.no_grad():
            model[2].bias.fill_(dead_bias)  # every unit of the second ReLU below zero: a dead layer
    return model


def train(model: nn.Module, tracker: ExperimentTracker, steps: int = 12, scale: float = 1.0) -> list[float]:
    torch.manual_seed(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for step in range(steps):
        x, y = torch.randn(64, 8) * scale, torch.randn(64, 4)
        loss = (model(x) - y).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        tracker.log_metrics({"loss": loss.detach()}, step=step)
        losses.append(loss.item())
    return losses


def sampled(tracker: ExperimentTracker) -> dict[int, dict[str, Any]]:
    tracker.flush()
    points: dict[int, dict[str, Any]] = {}
    for event in journal(tracker.run_dir):
        if event["kind"] == "metric" and any(k.startswith("activations/") for k in event["values"]):
            points.setdefault(event["step"], {}).update(event["values"])
    return points


def test_a_dead_layer_reads_zero_fraction_one_and_a_healthy_one_does_not() -> None:
    model = net(dead_bias=-100.0)
    with ExperimentTracker("acts", quiet_config()) as tracker:
        tracker.watch(model, activations_every=5)
        train(model, tracker, steps=12)
        points = sampled(tracker)
    assert sorted(points) == [0, 5, 10]  # every 5th training forward pass
    for values in points.values():
        assert values["activations/3/zero_fraction"] == 1.0  # the dead ReLU
        assert 0.2 < values["activations/1/zero_fraction"] < 0.8  # a healthy ReLU
        assert values["activations/1/min"] == 0.0 and values["activations/1/max"] > 0
        assert values["activations/5/saturation_fraction"] < 0.5
        assert "activations/1/saturation_fraction" not in values  # only bounded activations saturate
        assert {"mean", "std", "min", "max"} <= {k.rsplit("/", 1)[1] for k in values if k.startswith("activations/0/")}


def test_a_saturated_tanh_reads_saturation_near_one() -> None:
    model = net()
    with torch.no_grad():
        model[4].weight.mul_(1000.0)
    with ExperimentTracker("acts", quiet_config()) as tracker:
        tracker.watch(model, activations_every=1)
        train(model, tracker, steps=2, scale=10.0)
        points = sampled(tracker)
    assert points[0]["activations/5/saturation_fraction"] > 0.9


def test_training_gives_the_same_losses_with_and_without_activation_statistics() -> None:
    with ExperimentTracker("off", quiet_config()) as tracker:
        off = train(net(), tracker)
    with ExperimentTracker("every-step", quiet_config()) as tracker:
        model = net()
        tracker.watch(model, activations_every=1)
        on = train(model, tracker)
        assert len(sampled(tracker)) == 12
    assert on == off


def test_modules_are_chosen_by_type_or_name_and_eval_passes_are_not_sampled() -> None:
    model = net()
    with ExperimentTracker("acts", quiet_config(weights={"activations_every": 2, "activations_modules": ["2", "4"]})) as tracker:
        tracker.watch(model)  # the weights: config section turns it on
        model.eval()
        model(torch.randn(4, 8))
        model.train()
        train(model, tracker, steps=3)
        points = sampled(tracker)
    assert sorted(points) == [0, 2]
    assert {key.split("/")[1] for key in points[0]} == {"2", "4"}
    with ExperimentTracker("acts", quiet_config()) as tracker:
        tracker.watch(model, activations_every=1, activations_modules=nn.ReLU)
        train(model, tracker, steps=1)
        assert {key.split("/")[1] for key in sampled(tracker)[0]} == {"1", "3"}
        with pytest.raises(ValueError, match="matches no module"):
            tracker.watch(model, activations_every=1, activations_modules="encoder.*")
        with pytest.raises(ValueError, match="activations_every must be a positive"):
            tracker.watch(model, activations_every=0)


def test_histograms_of_activations_are_events_in_tensorboards_shape() -> None:
    model = net()
    with ExperimentTracker("acts", quiet_config(weights={"activations_histograms": True})) as tracker:
        tracker.watch(model, activations_every=3)
        train(model, tracker, steps=4)
        tracker.flush()
    histograms = [e for e in journal(tracker.run_dir) if e["kind"] == "histogram"]
    assert [h["step"] for h in histograms] == [0, 3]
    relu = histograms[0]["values"]["activations/1"]
    assert relu["min"] == 0.0 and relu["num"] == 64 * 32 and sum(relu["bucket_counts"]) == relu["num"]
    assert len(relu["bucket_limits"]) == len(relu["bucket_counts"]) == 30


def test_explain_names_a_layer_that_died_in_one_run() -> None:
    import json

    from typer.testing import CliRunner

    from unitrack.cli.app import app

    runs = []
    for dead in (None, -100.0):
        model = net(dead_bias=dead)
        with ExperimentTracker("acts", quiet_config()) as tracker:
            tracker.log_hyperparameters({"init_bias": dead or 0.0})
            tracker.watch(model, activations_every=2)
            train(model, tracker, steps=10)
        runs.append(tracker.run_id)
    result = CliRunner().invoke(app, ["explain", runs[0], runs[1], "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    explanation = json.loads(result.output)
    dead = [c for c in explanation["causes"] if c["title"] == "layer 3 is dead in run B"]
    assert dead and "layer 3: 100 % of units dead from step 0 in run B" in dead[0]["evidence"]
    assert any("revive the dead layer" in step for step in explanation["next_steps"])
    assert not any("layer 1 is dead" in c["title"] for c in explanation["causes"])  # healthy in both

"""Quantized, pruned and sparse weights in snapshots and ``unitrack delta``."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune
from typer.testing import CliRunner

from tests.conftest import quiet_config
from unitrack import ExperimentTracker
from unitrack.cli.app import app
from unitrack.weights.arrays import host_tensors

# torch.ao.quantization is deprecated in favour of torchao, and still what users' models are made with
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))


def quantized(model: nn.Module) -> nn.Module:
    return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def delta_rows(tracker: ExperimentTracker) -> dict[str, dict[str, Any]]:
    result = CliRunner().invoke(app, ["delta", tracker.run_id, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.output)["tensors"]}


def test_a_dynamically_quantized_model_changed_in_one_layer_shows_that_layer_only() -> None:
    model = mlp()
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed[2].weight.mul_(1.5)
    with ExperimentTracker("quantized", quiet_config()) as tracker:
        tracker.snapshot_weights(quantized(model), step=0)
        tracker.snapshot_weights(quantized(changed), step=1)
    rows = delta_rows(tracker)
    assert rows["2.weight"]["relative"] > 0.1  # dequantized values are compared
    assert rows["2.weight.scale"]["relative"] > 0.1  # and the scale that moved with them is reported
    for name in ("0.weight", "0.bias", "4.weight", "0.weight.scale", "0.weight.zero_point"):
        assert rows[name]["l2"] == 0.0, name


def test_a_layer_requantized_in_place_is_not_read_as_unchanged() -> None:
    """A dequantized temporary can reuse the freed address of the previous one: no cache may key on it."""
    q = quantized(mlp())
    with ExperimentTracker("quantized", quiet_config()) as tracker:
        tracker.snapshot_weights(q, step=0)
        weight, bias = q[0]._weight_bias()
        new = torch.quantize_per_tensor(weight.dequantize() * 2, weight.q_scale() * 2, 0, torch.qint8)
        q[0].set_weight_bias(new, bias)
        tracker.snapshot_weights(q, step=1)
    rows = delta_rows(tracker)
    assert rows["0.weight"]["relative"] == pytest.approx(1.0, rel=0.05)
    assert rows["2.weight"]["l2"] == 0.0


def test_static_quantization_is_read_dequantized_with_its_scales() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quant, self.fc, self.dequant = torch.ao.quantization.QuantStub(), nn.Linear(8, 4), torch.ao.quantization.DeQuantStub()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dequant(self.fc(self.quant(x)))

    net = Net().eval()
    net.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    prepared = torch.ao.quantization.prepare(net)
    prepared(torch.randn(16, 8))
    converted = torch.ao.quantization.convert(prepared)
    tensors = host_tensors(converted)
    qweight = converted.fc.weight()
    np.testing.assert_array_equal(tensors["fc.weight"].array, qweight.dequantize().numpy())
    assert tensors["fc.weight"].dtype == "float32" and tensors["fc.weight"].version is None
    assert tensors["fc.weight.scale"].array.shape == (4,)  # x86's default quantizes weights per channel


def test_plain_int8_and_float8_tensors_with_scales_are_compared_as_values() -> None:
    values = torch.tensor([[1, -2], [3, 4]], dtype=torch.int8)
    scale = torch.tensor([0.5, 0.25])
    tensors = host_tensors({"w": values, "w_scale": scale, "f8": torch.tensor([0.5, 1.0]).to(torch.float8_e4m3fn)})
    np.testing.assert_allclose(tensors["w"].array, [[0.5, -1.0], [0.75, 1.0]])
    np.testing.assert_allclose(tensors["w_scale"].array, [0.5, 0.25])
    np.testing.assert_allclose(tensors["f8"].array, [0.5, 1.0])


def test_half_of_a_layer_pruned_shows_its_sparsity_going_from_zero_to_a_half() -> None:
    model = mlp()
    with ExperimentTracker("pruned", quiet_config()) as tracker:
        tracker.snapshot_weights(model, step=0)
        prune.l1_unstructured(model[2], "weight", amount=0.5)
        tracker.snapshot_weights(model, step=1)
    rows = delta_rows(tracker)
    assert "2.weight_orig" not in rows and "2.weight_mask" not in rows  # the effective weight, named as the layer's
    assert rows["2.weight"]["sparsity"] == {"a": 0.0, "b": pytest.approx(0.5)}
    assert rows["2.weight"]["changed_fraction"] == pytest.approx(0.5)
    assert rows["0.weight"]["sparsity"] == {"a": 0.0, "b": 0.0} and rows["0.weight"]["l2"] == 0.0
    table = CliRunner().invoke(app, ["delta", tracker.run_id], catch_exceptions=False).output
    assert "sparsity" in table and "0% → 50%" in table


def test_a_sparse_tensor_is_read_dense() -> None:
    dense = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    tensors = host_tensors({"w": dense.to_sparse()})
    np.testing.assert_array_equal(tensors["w"].array, dense.numpy())


def test_plot_draws_sparsity_over_snapshots_and_activation_statistics(tmp_path: Any) -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with ExperimentTracker("pruned", quiet_config()) as tracker:
        tracker.watch(model, optimizer=optimizer, snapshot_every=4, activations_every=2)
        for step in range(12):
            if step == 5:
                prune.l1_unstructured(model[2], "weight", amount=0.5)
            loss = model(torch.randn(32, 8)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tracker.log_metrics({"loss": loss.item()}, step=step)
    result = CliRunner().invoke(app, ["plot", tracker.run_id, "--out", str(tmp_path / "plots")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("sparsity", "activations"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes().startswith(b"\x89PNG"), name

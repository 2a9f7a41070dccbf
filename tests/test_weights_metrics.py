"""Change metrics against numbers computed by hand with NumPy, for a known perturbation of one layer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from unitrack.weights import kernel
from unitrack.weights.compare import compare_sources
from unitrack.weights.plugins import METRICS, register_metric
from unitrack.weights.sources import ArraySource, file_source

RNG = np.random.default_rng(7)
BEFORE = {
    "encoder.weight": RNG.standard_normal((6, 5)).astype(np.float32),
    "encoder.bias": RNG.standard_normal(6).astype(np.float32),
    "head.weight": RNG.standard_normal((3, 6)).astype(np.float32),
    "head.bias": RNG.standard_normal(3).astype(np.float32),
}
# only head.weight moves: rows 0 and 2, row 1 stays put
PERTURBATION = np.zeros((3, 6), dtype=np.float32)
PERTURBATION[0] = [0.5, -0.25, 0.0, 0.125, 0.0, 1.0]
PERTURBATION[2, 3] = -2.0
AFTER = {**BEFORE, "head.weight": BEFORE["head.weight"] + PERTURBATION}


def expected_head_metrics(tolerance: float) -> dict[str, float]:
    a = BEFORE["head.weight"].astype(np.float64)
    b = AFTER["head.weight"].astype(np.float64)
    d = b - a
    return {
        "l1": np.abs(d).sum(),
        "mean_abs": np.abs(d).mean(),
        "l2": np.sqrt((d**2).sum()),
        "relative": np.sqrt((d**2).sum()) / (np.sqrt((a**2).sum()) + 1e-12),
        "cosine": (a * b).sum() / (np.sqrt((a**2).sum()) * np.sqrt((b**2).sum())),
        "max_abs": np.abs(d).max(),
        "changed_fraction": np.count_nonzero(np.abs(d) > tolerance) / d.size,
        "row_l2": np.sqrt((d**2).sum(axis=1)),
    }


def check_report(report, tolerance: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    rows = {row["name"]: row for row in report.to_dict(top_k=2)["tensors"]}
    want = expected_head_metrics(tolerance)
    head = rows["head.weight"]
    for key in ("l1", "mean_abs", "l2", "relative", "cosine", "max_abs", "changed_fraction"):
        assert head[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key
    assert head["neurons"]["units"] == 3
    assert head["neurons"]["unmoved"] == 1  # row 1
    top = head["neurons"]["top"]
    assert [t["unit"] for t in top] == [2, 0]  # row 2 moved by 2.0, row 0 by ~1.15
    assert [t["l2"] for t in top] == pytest.approx([want["row_l2"][2], want["row_l2"][0]])
    assert head["nan"] == {"a": 0, "b": 0} and head["inf"] == {"a": 0, "b": 0}
    for name in ("encoder.weight", "encoder.bias", "head.bias"):
        untouched = rows[name]
        assert untouched["l1"] == untouched["l2"] == untouched["max_abs"] == untouched["relative"] == 0.0
        assert untouched["changed_fraction"] == 0.0 and untouched["cosine"] == pytest.approx(1.0)
        assert untouched["neurons"]["unmoved"] == untouched["neurons"]["units"]
    assert report.to_dict()["tensors"][0]["name"] == "head.weight"  # largest movers first


def test_metrics_match_numpy_by_hand() -> None:
    check_report(compare_sources(ArraySource.of(BEFORE), ArraySource.of(AFTER)))


def test_tolerance_counts_only_larger_changes() -> None:
    report = compare_sources(ArraySource.of(BEFORE), ArraySource.of(AFTER), tolerance=0.2)
    check_report(report, tolerance=0.2)
    assert report.by_name()["head.weight"].delta.changed == 4  # 0.5, -0.25, 1.0, -2.0 (0.125 is within)


def test_safetensors_and_torch_files_give_the_same_numbers(tmp_path: Path) -> None:
    save_file(BEFORE, str(tmp_path / "a.safetensors"))
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in AFTER.items()}, "epoch": 3}, tmp_path / "b.pt")
    report = compare_sources(file_source(tmp_path / "a.safetensors"), file_source(tmp_path / "b.pt"))
    check_report(report)


def test_distance_from_init_and_structural_changes() -> None:
    init = ArraySource.of(BEFORE)
    later = {k: v for k, v in AFTER.items() if k != "head.bias"}
    later["new.weight"] = np.ones((2, 2), np.float32)
    later["encoder.bias"] = np.zeros(7, np.float32)
    report = compare_sources(ArraySource.of(AFTER), ArraySource.of(later), init=init)
    data = report.to_dict()
    assert data["added"] == ["new.weight"]
    assert data["removed"] == ["head.bias"]
    assert data["shape_changed"] == [{"name": "encoder.bias", "a": [6], "b": [7]}]
    head = report.by_name()["head.weight"]
    assert head.delta.l2 == 0.0
    assert head.from_init_l2 == pytest.approx(expected_head_metrics(0.0)["l2"])
    assert report.by_name()["encoder.weight"].from_init_l2 == 0.0


def test_dtype_change_is_reported_and_still_measured() -> None:
    half = {**BEFORE, "head.bias": BEFORE["head.bias"].astype(np.float16)}
    data = compare_sources(ArraySource.of(BEFORE), ArraySource.of(half)).to_dict()
    assert data["dtype_changed"] == [{"name": "head.bias", "a": "float32", "b": "float16"}]
    row = next(r for r in data["tensors"] if r["name"] == "head.bias")
    assert 0 < row["max_abs"] < 1e-2


def test_nan_and_inf_are_counted_and_left_out_of_the_metrics() -> None:
    broken = dict(AFTER)
    broken["head.weight"] = AFTER["head.weight"].copy()
    broken["head.weight"][1, 1] = np.nan
    broken["head.weight"][1, 2] = np.inf
    row = next(r for r in compare_sources(ArraySource.of(AFTER), ArraySource.of(broken)).to_dict()["tensors"] if r["name"] == "head.weight")
    assert row["nan"] == {"a": 0, "b": 1}
    assert row["inf"] == {"a": 0, "b": 1}
    assert row["l2"] == 0.0 and math.isfinite(row["cosine"])


@pytest.mark.parametrize("shape", [(3, 4096 + 1000), (2 * 4096 + 5,), (5, 7, 3, 3)])
def test_chunking_does_not_change_the_numbers(shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "BLOCK", 4096)  # several blocks per tensor, and rows longer than a block
    a = RNG.standard_normal(shape).astype(np.float32)
    b = (a + RNG.standard_normal(shape).astype(np.float32) * 0.01).astype(np.float32)
    delta = compare_sources(ArraySource.of({"w": a}), ArraySource.of({"w": b})).by_name()["w"].delta
    d = b.astype(np.float64) - a.astype(np.float64)
    assert delta.l2 == pytest.approx(np.sqrt((d**2).sum()), rel=1e-12)
    assert delta.l1 == pytest.approx(np.abs(d).sum(), rel=1e-12)
    assert delta.max_abs == np.abs(d).max()
    rows = d.reshape(shape[0], -1)
    assert np.sqrt(delta.row_d2) == pytest.approx(np.sqrt((rows**2).sum(axis=1)), rel=1e-12)


def test_bfloat16_tensors_are_compared_as_numbers() -> None:
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.bfloat16)
    b = a.clone()
    b[0, 0] = 1.5
    delta = compare_sources(ArraySource.of({"w": a}), ArraySource.of({"w": b})).by_name()["w"].delta
    assert delta.l2 == 0.5 and delta.changed == 1 and delta.norm_a == pytest.approx(math.sqrt(30))


def test_a_registered_metric_appears_in_every_row() -> None:
    @register_metric("sign_flips")
    def sign_flips(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.count_nonzero((a > 0) != (b > 0)))

    try:
        rows = compare_sources(ArraySource.of(BEFORE), ArraySource.of(AFTER)).to_dict()["tensors"]
    finally:
        METRICS.pop("sign_flips")
    expected = np.count_nonzero((BEFORE["head.weight"] > 0) != (AFTER["head.weight"] > 0))
    assert {r["name"]: r["sign_flips"] for r in rows}["head.weight"] == expected
    assert all("sign_flips" in r for r in rows)


def test_pytree_of_arrays_is_flattened() -> None:
    tree = {"params": {"dense": {"kernel": np.ones((2, 3)), "bias": np.zeros(3)}, "layers": [np.ones(2), np.ones(1)]}, "step": 7}
    names = set(ArraySource.of(tree).tensors())
    assert names == {"params.dense.kernel", "params.dense.bias", "params.layers.0", "params.layers.1"}

"""The fused weight-delta kernel: every metric, per tensor and per neuron, against float64 NumPy.

The reference widens both tensors to float64, leaves out every pair where either side is NaN or
±Inf (and counts those per side), and computes each sum with plain NumPy; the kernel must agree
to 1e-9 relative on random tensors, with NaN / Inf, zeros, non-contiguous inputs, several
blocks per tensor and the dtypes training uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from unitrack.weights import kernel
from unitrack.weights.arrays import HostTensor, as_float
from unitrack.weights.compare import compare_sources
from unitrack.weights.fused import A2, AB, B2, CHANGED, D2, L1, MAX
from unitrack.weights.kernel import cosine, tensor_delta
from unitrack.weights.sources import ArraySource

RNG = np.random.default_rng(20)


def reference(a: np.ndarray, b: np.ndarray, dtype_a: str, dtype_b: str, tolerance: float = 0.0) -> dict[str, Any]:
    x = np.asarray(as_float(a, dtype_a), dtype=np.float64)
    y = np.asarray(as_float(b, dtype_b), dtype=np.float64)
    counts = {
        "nan_a": int(np.isnan(x).sum()), "nan_b": int(np.isnan(y).sum()),
        "inf_a": int(np.isinf(x).sum()), "inf_b": int(np.isinf(y).sum()),
    }  # fmt: skip
    bad = ~(np.isfinite(x) & np.isfinite(y))
    x, y = np.where(bad, 0.0, x), np.where(bad, 0.0, y)
    d = y - x
    shape = x.shape or (1,)
    rows = [r.reshape(shape[0], -1) for r in (x, y, d)]
    xr, yr, dr = rows

    def sums(x: np.ndarray, y: np.ndarray, d: np.ndarray, axis: Any) -> dict[str, Any]:
        return {
            "l1": np.abs(d).sum(axis=axis), "d2": (d * d).sum(axis=axis), "a2": (x * x).sum(axis=axis),
            "b2": (y * y).sum(axis=axis), "ab": (x * y).sum(axis=axis),
            "max_abs": np.abs(d).max(axis=axis, initial=0.0), "changed": (np.abs(d) > tolerance).sum(axis=axis),
        }  # fmt: skip

    return {**counts, "total": sums(x, y, d, None), "rows": sums(xr, yr, dr, 1)}


def close(got: float, want: float) -> bool:
    return bool(abs(got - want) <= 1e-9 * abs(want) + 1e-300)


def check(delta: kernel.TensorDelta, a: np.ndarray, b: np.ndarray, dtype_a: str, dtype_b: str, tolerance: float = 0.0) -> None:
    want = reference(a, b, dtype_a, dtype_b, tolerance)
    total = want["total"]
    got = {"l1": delta.l1, "d2": delta.sum_d2, "a2": delta.sum_a2, "b2": delta.sum_b2, "ab": delta.sum_ab,
           "max_abs": delta.max_abs, "changed": delta.changed}  # fmt: skip
    for key, value in got.items():
        assert close(value, float(total[key])), (key, value, float(total[key]))
    for key in ("nan_a", "nan_b", "inf_a", "inf_b"):
        assert getattr(delta, key) == want[key], key
    assert close(delta.cosine, cosine(float(total["ab"]), float(total["a2"]), float(total["b2"])))
    assert delta.numel == a.size
    rows = want["rows"]
    if a.ndim >= 2:
        assert delta.rows is not None and delta.row_d2 is not None
        for field, key in ((L1, "l1"), (D2, "d2"), (A2, "a2"), (B2, "b2"), (AB, "ab"), (MAX, "max_abs"), (CHANGED, "changed")):
            np.testing.assert_allclose(delta.rows[field], rows[key], rtol=1e-9, atol=1e-300, err_msg=key)
    elif a.ndim == 1:
        np.testing.assert_allclose(delta.row_d2, rows["d2"], rtol=1e-9, atol=1e-300)


def sprinkle(array: np.ndarray, count: int) -> np.ndarray:
    out = array.copy()
    flat = out.reshape(-1)
    for value in (np.nan, np.inf, -np.inf):
        flat[RNG.integers(0, flat.size, count)] = value
    return out


def pair(shape: tuple[int, ...], dtype: Any = np.float32, scale: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    a = RNG.standard_normal(shape).astype(dtype)
    b = (a + RNG.standard_normal(shape) * scale).astype(dtype)
    return a, b


@pytest.fixture(params=[kernel.BLOCK, 1000], ids=["one-block", "many-blocks"])
def block(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(kernel, "BLOCK", request.param)
    return int(request.param)


@pytest.mark.parametrize("shape", [(64, 300), (3000,), (8, 4, 3, 3), (2, 5000), (1, 7)])
def test_float32_and_float64_match_the_reference(shape: tuple[int, ...], block: int) -> None:
    for dtype, name in ((np.float32, "float32"), (np.float64, "float64")):
        a, b = pair(shape, dtype)
        check(tensor_delta(a, b, name, name), a, b, name, name)


def test_nan_and_inf_on_either_side_are_left_out_and_counted(block: int) -> None:
    a, b = pair((50, 80))
    a, b = sprinkle(a, 5), sprinkle(b, 7)
    b[3, 4] = a[3, 4] = np.nan  # both sides bad at once
    delta = tensor_delta(a, b, "float32", "float32")
    assert delta.nan_b >= 7 and np.isfinite(delta.l1) and np.isfinite(delta.cosine)
    check(delta, a, b, "float32", "float32")


def test_zeros_unchanged_and_sign_flips(block: int) -> None:
    zero = np.zeros((40, 33), np.float32)
    check(tensor_delta(zero, zero, "float32", "float32"), zero, zero, "float32", "float32")
    assert tensor_delta(zero, zero, "float32", "float32").cosine == 1.0
    a, _ = pair((40, 33))
    check(tensor_delta(zero, a, "float32", "float32"), zero, a, "float32", "float32")
    check(tensor_delta(a, -a, "float32", "float32"), a, -a, "float32", "float32")
    assert tensor_delta(a, -a, "float32", "float32").cosine == pytest.approx(-1.0)
    same = tensor_delta(a, a, "float32", "float32")
    assert same.l1 == same.sum_d2 == same.max_abs == same.changed == 0 and same.sum_a2 > 0


def test_non_contiguous_inputs(block: int) -> None:
    a, b = pair((90, 70))
    for left, right in ((a.T, b.T), (a[::2, 1::3], b[::2, 1::3]), (a[:, :50], b[:, 20:])):
        assert not left.flags["C_CONTIGUOUS"]
        check(tensor_delta(left, right, "float32", "float32"), left, right, "float32", "float32")
    source_a = ArraySource({"w": HostTensor(a.T, "float32")}, "a")
    source_b = ArraySource({"w": HostTensor(b.T, "float32")}, "b")
    check(compare_sources(source_a, source_b).by_name()["w"].delta, a.T, b.T, "float32", "float32")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int8])
def test_training_dtypes_match_the_reference(dtype: torch.dtype, block: int) -> None:
    torch.manual_seed(0)
    a = torch.randn(60, 45) * 20
    b = a + torch.randn(60, 45)
    if dtype.is_floating_point:
        a[1, 1], b[2, 2], b[3, 3] = float("nan"), float("inf"), float("-inf")
    source_a, source_b = ArraySource.of({"w": a.to(dtype)}), ArraySource.of({"w": b.to(dtype)})
    name = str(dtype).removeprefix("torch.")
    delta = compare_sources(source_a, source_b).by_name()["w"].delta
    check(delta, source_a.array("w"), source_b.array("w"), name, name)


def test_mixed_dtypes_and_a_tolerance(block: int) -> None:
    a, b = pair((30, 40), np.float32, scale=0.05)
    half = b.astype(np.float16)
    check(tensor_delta(a, half, "float32", "float16"), a, half, "float32", "float16")
    check(tensor_delta(a, b, "float32", "float32", tolerance=0.03), a, b, "float32", "float32", tolerance=0.03)
    wide = b.astype(np.float64)
    check(tensor_delta(a, wide, "float32", "float64", tolerance=0.01), a, wide, "float32", "float64", tolerance=0.01)


def test_scalars_and_empty_tensors() -> None:
    a, b = np.array(1.5, np.float32), np.array(-2.0, np.float32)
    delta = tensor_delta(a, b, "float32", "float32")
    assert (delta.l1, delta.max_abs, delta.changed, delta.rows, delta.row_d2) == (3.5, 3.5, 1, None, None)
    empty = np.zeros((0, 4), np.float32)
    assert tensor_delta(empty, empty, "float32", "float32").numel == 0


def test_every_neuron_metric_in_the_report_matches_the_reference() -> None:
    a, b = pair((12, 9), scale=0.1)
    b[4] = a[4]  # one neuron that did not move
    change = compare_sources(ArraySource.of({"w": a}), ArraySource.of({"w": b})).by_name()["w"]
    neurons = change.neurons(top_k=12)
    assert neurons is not None and neurons["units"] == 12 and neurons["unmoved"] == 1
    rows = reference(a, b, "float32", "float32")["rows"]
    for entry in neurons["top"]:
        unit = entry["unit"]
        assert close(entry["l2"], float(np.sqrt(rows["d2"][unit])))
        assert close(entry["l1"], float(rows["l1"][unit])) and close(entry["max_abs"], float(rows["max_abs"][unit]))
        assert entry["changed"] == rows["changed"][unit]
        assert close(entry["cosine"], cosine(float(rows["ab"][unit]), float(rows["a2"][unit]), float(rows["b2"][unit])))

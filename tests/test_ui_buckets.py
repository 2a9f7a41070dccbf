"""Full-fidelity buckets: a spike survives, NaN/inf do not poison a bucket, ranges return raw points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unitrack.ui.buckets import bucket_series


def test_every_bucket_bounds_its_points_and_a_spike_is_a_max() -> None:
    steps = np.arange(100_000, dtype=np.int64)
    values = np.sin(steps / 500.0)
    values[77_777] = 1e6
    values[12_345] = -1e6
    out = bucket_series(steps, values, 1000)
    assert out["raw"] is False and out["total"] == 100_000 and len(out["step"]) == 1000
    assert max(out["max"]) == 1e6 and min(out["min"]) == -1e6
    assert all(lo <= mean <= hi for lo, mean, hi in zip(out["min"], out["value"], out["max"], strict=True))
    assert out["step"] == sorted(out["step"]) and out["index"] == out["step"]


def test_nan_and_inf_become_null_and_never_hide_the_finite_values() -> None:
    values = np.array([1.0, math.nan, 3.0, math.nan, math.nan, math.nan, math.inf, 2.0])
    out = bucket_series(np.arange(8, dtype=np.int64), values, 4)
    assert out["value"] == [1.0, 3.0, None, 2.0]  # a bucket of NaN only is a gap; the mean is of finite values
    assert out["min"] == [1.0, 3.0, None, 2.0] and out["max"] == [1.0, 3.0, None, None]
    raw = bucket_series(np.arange(8, dtype=np.int64), values, 8)
    assert raw["raw"] is True and raw["value"] == [1.0, None, 3.0, None, None, None, None, 2.0]


def test_a_range_by_step_time_or_position() -> None:
    steps = np.array([0, 1, 2, 0, 1, 2], dtype=np.int64)  # a loop that resets its step
    values = np.arange(6, dtype=np.float64)
    times = 100.0 + np.arange(6)
    assert bucket_series(steps, values, 10, 1, 1)["value"] == [1.0, 4.0]
    assert bucket_series(steps, values, 10, 102.0, 103.0, times, "time")["value"] == [2.0, 3.0]
    assert bucket_series(steps, values, 10, 3, 4, times, "index")["value"] == [3.0, 4.0]
    with pytest.raises(ValueError, match="buckets"):
        bucket_series(steps, values, 0)
    with pytest.raises(ValueError, match="x="):
        bucket_series(steps, values, 10, x="nope")

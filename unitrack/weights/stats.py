"""Histograms in the shape TensorBoard's histogram summary takes (and the `histogram` event carries)."""

from __future__ import annotations

from typing import Any

import numpy as np

BUCKETS = 30


def histogram(values: np.ndarray, buckets: int = BUCKETS) -> dict[str, Any] | None:
    """min, max, num, sum, sum_squares, bucket_limits, bucket_counts of the finite values (None if none)."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return None
    low, high = float(flat.min()), float(flat.max())
    if low == high:
        edges = np.array([low, high + max(abs(high), 1.0) * 1e-6])
        counts = np.array([flat.size])
    else:
        counts, edges = np.histogram(flat, bins=buckets, range=(low, high))
    return {
        "min": low,
        "max": high,
        "num": int(flat.size),
        "sum": float(flat.sum()),
        "sum_squares": float(np.dot(flat, flat)),
        "bucket_limits": [float(e) for e in edges[1:]],
        "bucket_counts": [int(c) for c in counts],
    }

"""Full-fidelity downsampling of one metric series for the dashboard's charts.

Other tracking UIs sample a long curve (320, 500, 1,000 or 1,500 points) and a single spike can
vanish. Here a series longer than the chart asks for is cut into at most ``buckets`` runs of
consecutive points (in logged order); each bucket sends a representative point (its middle
point's step and time, the mean of its finite values) plus its minimum and maximum, which the
page draws as a band. A spike is therefore always the ``max`` (or ``min``) of its bucket, and a
zoom asks again for the visible range, down to the raw points.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_BUCKETS = 200_000


def _json_floats(values: np.ndarray) -> list[float | None]:
    """Floats for JSON, NaN and ±inf as ``null`` (the chart draws a gap)."""
    out: list[float | None] = values.tolist()
    if not np.isfinite(values).all():
        out = [v if v is not None and math.isfinite(v) else None for v in out]
    return out


def bucket_series(
    steps: np.ndarray,
    values: np.ndarray,
    buckets: int,
    start: float | None = None,
    end: float | None = None,
    times: np.ndarray | None = None,
    x: str = "step",
) -> dict[str, Any]:
    """The points whose ``x`` (``step``, wall-clock ``time``, or ``index``: the position in logged
    order, for a series whose steps go back) lies in ``[start, end]``, raw when they are at most
    ``buckets``, otherwise at most ``buckets`` buckets with their min and max.

    ``total`` counts the points in the range; ``raw`` says which form was sent; ``index`` gives
    each sent point's position in logged order.
    """
    if not 1 <= buckets <= MAX_BUCKETS:
        raise ValueError(f"buckets={buckets}: give a number from 1 to {MAX_BUCKETS}")
    if x == "time" and times is None:
        raise ValueError("this series has no times: ask for x=step")
    positions = np.arange(len(values), dtype=np.int64)
    axis = {"step": steps, "time": times, "index": positions}.get(x)
    if axis is None:
        raise ValueError(f"x={x!r}: choose step, time or index")
    if start is not None or end is not None:
        keep = np.ones(len(axis), dtype=bool)
        if start is not None:
            keep &= axis >= start
        if end is not None:
            keep &= axis <= end
        index = np.flatnonzero(keep)
        steps, values, positions = steps[index], values[index], positions[index]
        times = times[index] if times is not None else None
    total = len(values)
    if total <= buckets:
        shown = _json_floats(values)
        out = {"total": total, "raw": True, "step": steps.tolist(), "value": shown, "min": shown, "max": shown}
        out["index"] = positions.tolist()
    else:
        edges = np.linspace(0, total, buckets + 1).astype(np.int64)
        edges = np.unique(edges)[:-1]
        middle = (edges + np.append(edges[1:], total)) // 2
        finite = np.isfinite(values)
        clean = np.where(finite, values, 0.0)
        counts = np.add.reduceat(finite.astype(np.int64), edges)
        sums = np.add.reduceat(clean, edges)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        # fmin/fmax skip NaN; a bucket of only NaN stays NaN (sent as null); ±inf is kept as a bound
        low = np.fmin.reduceat(values, edges)
        high = np.fmax.reduceat(values, edges)
        steps, positions = steps[middle], positions[middle]
        times = times[middle] if times is not None else None
        out = {
            "total": total,
            "raw": False,
            "step": steps.tolist(),
            "value": _json_floats(mean),
            "min": _json_floats(low),
            "max": _json_floats(high),
            "index": positions.tolist(),
        }
    if times is not None:
        out["time"] = times.tolist()
    return out

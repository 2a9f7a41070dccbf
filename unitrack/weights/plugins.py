"""The plugin point: add a change metric or a plot without editing unitrack.

    from unitrack.weights.plugins import register_metric, register_plot

    @register_metric("sign_flips")
    def sign_flips(a, b):               # two float arrays of one tensor (memory-mapped: read once)
        return float(((a > 0) != (b > 0)).mean())

    @register_plot("my_plot")
    def my_plot(data, out_dir):         # data: a unitrack.weights.trajectory.RunWeights
        ...; return out_dir / "my_plot.png"

A metric's value appears in every per-tensor row (``delta --json`` and the table's extra
columns); a plot is drawn by ``unitrack plot`` and at finish with ``monitoring.create_plots``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], float]
PlotFn = Callable[[Any, Path], "Path | list[Path] | None"]

METRICS: dict[str, MetricFn] = {}
PLOTS: dict[str, PlotFn] = {}


def register_metric(name: str, fn: MetricFn | None = None) -> Any:
    """Register ``fn(a, b) -> float`` as the change metric ``name`` (usable as a decorator)."""
    return _register(METRICS, "metric", name, fn)


def register_plot(name: str, fn: PlotFn | None = None) -> Any:
    """Register ``fn(run_weights, out_dir) -> path(s)`` as the plot ``name`` (usable as a decorator)."""
    return _register(PLOTS, "plot", name, fn)


def _register(table: dict[str, Any], what: str, name: str, fn: Any) -> Any:
    if not name or not isinstance(name, str):
        raise ValueError(f"a {what} needs a non-empty name, not {name!r}")

    def add(function: Any) -> Any:
        if not callable(function):
            raise TypeError(f"{what} {name!r} must be a function, not {type(function).__name__}")
        table[name] = function
        return function

    return add if fn is None else add(fn)

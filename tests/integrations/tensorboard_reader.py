"""Scalars read back from a TensorBoard log dir with TensorBoard's own reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def with_tensorboard(config: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """``config`` plus the TensorBoard backend writing under ``log_dir``."""
    tracking = {**config.get("tracking", {}), "backends": ["local", "tensorboard"], "tensorboard_log_dir": str(log_dir)}
    return {**config, "tracking": tracking}


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the one run under ``log_dir``: {tag: [(step, value)]}."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(log_dir))
    multiplexer.Reload()
    runs = multiplexer.Runs()
    assert len(runs) == 1, sorted(runs)
    (run,) = runs
    from tensorboard.util.tensor_util import make_ndarray

    series: dict[str, list[tuple[int, float]]] = {}
    for tag in multiplexer.GetAccumulator(run).Tags().get("tensors", []):
        if multiplexer.SummaryMetadata(run, tag).plugin_data.plugin_name == "scalars":
            series[tag] = [(e.step, float(make_ndarray(e.tensor_proto))) for e in multiplexer.Tensors(run, tag)]
    for tag in multiplexer.GetAccumulator(run).Tags().get("scalars", []):
        series[tag] = [(e.step, e.value) for e in multiplexer.Scalars(run, tag)]
    return series

"""A run's weights over time: per-layer norms and changes between consecutive snapshots.

Each consecutive pair of the run's weight points (snapshots and checkpoints, by step) is compared
once, streaming, with distances from the first point (the initialisation) alongside. One layer
(the largest matrix) is also followed per neuron, and a few of its individual weights (those
that moved most overall) are traced value by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unitrack.weights.arrays import as_float
from unitrack.weights.compare import compare_sources
from unitrack.weights.refs import run_weight_points
from unitrack.weights.sources import WeightSource

TRACED_WEIGHTS = 5


@dataclass
class RunWeights:
    """What the plots draw. Per-layer lists run over ``steps``; change lists start with NaN
    (the first point has no predecessor)."""

    run_id: str
    steps: list[int] = field(default_factory=list)
    points: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    norm: dict[str, list[float]] = field(default_factory=dict)
    step_change: dict[str, list[float]] = field(default_factory=dict)  # relative to the previous point
    from_init: dict[str, list[float]] = field(default_factory=dict)  # L2 distance from the first point
    sparsity: dict[str, list[float]] = field(default_factory=dict)  # fraction of zeros (pruned layers), when known
    total_change: list[float] = field(default_factory=list)
    total_from_init: list[float] = field(default_factory=list)
    neuron_layer: str | None = None
    neuron_change: np.ndarray | None = None  # [intervals, units]: L2 of each unit's change
    traces: dict[str, list[float]] = field(default_factory=dict)  # "layer[index]" -> value per point
    metric_history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def run_weights(store: Any, ref: str, *, tolerance: float = 0.0) -> RunWeights:
    from unitrack.reading import open_run

    view = open_run(ref, store)
    result = RunWeights(view.run_id, metric_history=view.metric_history)
    points = run_weight_points(store, ref)
    if not points:
        return result
    sources = [point.open() for point in points]
    first = sources[0]
    result.steps = [p.step for p in points]
    result.points = [p.name for p in points]
    neuron_rows: list[np.ndarray] = []
    for index, source in enumerate(sources):
        if index == 0:
            report = compare_sources(first, first, per_row=False)
        else:
            report = compare_sources(sources[index - 1], source, tolerance=tolerance, init=first)
        _append(result, report, first_point=index == 0)
        if index == 0:
            result.neuron_layer = _largest_matrix(first)
        elif result.neuron_layer is not None and result.neuron_layer in report.by_name():
            rows = report.by_name()[result.neuron_layer].delta.row_d2
            if rows is not None:
                neuron_rows.append(np.sqrt(rows))
    if neuron_rows and len({r.size for r in neuron_rows}) == 1:
        result.neuron_change = np.vstack(neuron_rows)
    if result.neuron_layer is not None:
        result.traces = _traces(sources, result.neuron_layer)
    return result


def _append(result: RunWeights, report: Any, first_point: bool) -> None:
    nan = float("nan")
    for change in report.changes:
        if change.name not in result.norm:
            result.layers.append(change.name)
            padding = len(result.total_change)
            for table in (result.norm, result.step_change, result.from_init, result.sparsity):
                table[change.name] = [nan] * padding
        result.norm[change.name].append(change.delta.norm_b)
        result.sparsity[change.name].append(change.sparsity[1] if change.sparsity is not None else nan)
        result.step_change[change.name].append(nan if first_point else change.delta.relative)
        result.from_init[change.name].append(0.0 if first_point else (change.from_init_l2 or 0.0))
    count = len(result.total_change) + 1
    for table in (result.norm, result.step_change, result.from_init, result.sparsity):
        for values in table.values():
            values.extend([nan] * (count - len(values)))
    total = report.total()
    result.total_change.append(nan if first_point else total["relative"])
    distances = [c.from_init_l2 or 0.0 for c in report.changes]
    result.total_from_init.append(0.0 if first_point else float(np.sqrt(np.sum(np.square(distances)))))


def _largest_matrix(source: WeightSource) -> str | None:
    matrices = {n: int(np.prod(m.shape)) for n, m in source.tensors().items() if len(m.shape) >= 2}
    return max(matrices, key=lambda n: matrices[n]) if matrices else None


def _traces(sources: list[WeightSource], layer: str) -> dict[str, list[float]]:
    """The values, at every point, of the few weights of ``layer`` that moved most from first to last."""
    first, last = sources[0], sources[-1]
    if layer not in last.tensors() or first.tensors()[layer].shape != last.tensors()[layer].shape:
        return {}
    meta = first.tensors()[layer]
    start = as_float(first.array(layer), meta.dtype).reshape(-1).astype(np.float64)
    end = as_float(last.array(layer), last.tensors()[layer].dtype).reshape(-1).astype(np.float64)
    moved = np.abs(np.nan_to_num(end - start))
    count = min(TRACED_WEIGHTS, moved.size)
    chosen = np.sort(np.argpartition(-moved, count - 1)[:count])
    traces: dict[str, list[float]] = {}
    for flat_index in chosen:
        index = np.unravel_index(int(flat_index), meta.shape)
        label = f"{layer}[{', '.join(str(int(i)) for i in index)}]"
        values = []
        for source in sources:
            tensor = source.tensors().get(layer)
            if tensor is None or tensor.shape != meta.shape:
                values.append(float("nan"))
            else:
                values.append(float(as_float(source.array(layer).reshape(-1)[flat_index : flat_index + 1], tensor.dtype)[0]))
        traces[label] = values
    return traces

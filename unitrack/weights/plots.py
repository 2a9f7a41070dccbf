"""``unitrack plot``: PNG pictures of a run's learning and of how its weights moved.

Drawn with matplotlib's object API (no pyplot, so a user's backend and open figures are left
alone). A plot without data (no validation metric, no gradient sampling, fewer than two
snapshots) is skipped, not drawn empty.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unitrack.weights.plugins import PLOTS
from unitrack.weights.trajectory import RunWeights, run_weights
from unitrack.weights.watcher import UPDATE_RATIO_PREFIX

log = logging.getLogger("unitrack")
HEALTHY_UPDATE_RATIO = 1e-3


def plot_run(store: Any, ref: str, out_dir: Path) -> list[Path]:
    """Draw every plot of the run ``ref`` that has data into ``out_dir``; return the files written."""
    data = run_weights(store, ref)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, draw in [*BUILTIN_PLOTS.items(), *PLOTS.items()]:
        try:
            result = draw(data, out_dir)
        except Exception as exc:  # one broken plot (a plugin's) must not cost the others
            log.warning("unitrack: plot %r failed: %s: %s", name, type(exc).__name__, exc)
            continue
        written.extend([result] if isinstance(result, Path) else list(result or []))
    return written


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (8, 4.5)) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    return figure, axes


def _save(figure: Any, out_dir: Path, name: str) -> Path:
    path = out_dir / f"{name}.png"
    figure.savefig(path)
    return path


def _series(points: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    finite = [(p["step"], float(p["value"])) for p in points if isinstance(p["value"], (int, float)) and math.isfinite(p["value"])]
    return [s for s, _ in finite], [v for _, v in finite]


def _is_validation(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in ("val", "valid", "test", "eval"))


def learning_curves(data: RunWeights, out_dir: Path) -> Path | None:
    """Loss on a log scale (train and validation), accuracy, and the overfitting gap (validation − train loss)."""
    history = {k: v for k, v in data.metric_history.items() if "/" not in k or k.split("/")[0] in ("train", "val", "valid", "test", "eval")}
    losses = {k: v for k, v in history.items() if "loss" in k.lower()}
    accuracies = {k: v for k, v in history.items() if "acc" in k.lower()}
    if not losses and not accuracies:
        return None
    figure, axes = _figure(1, 3, (15, 4.5))
    loss_ax, acc_ax, gap_ax = axes[0]
    for key, points in sorted(losses.items()):
        steps, values = _series(points)
        loss_ax.plot(steps, values, label=key, linestyle="--" if _is_validation(key) else "-")
    loss_ax.set_yscale("log")
    loss_ax.set(title="Loss (log scale)", xlabel="step", ylabel="loss")
    for key, points in sorted(accuracies.items()):
        steps, values = _series(points)
        acc_ax.plot(steps, values, label=key, linestyle="--" if _is_validation(key) else "-")
    acc_ax.set(title="Accuracy", xlabel="step", ylabel="accuracy")
    train = [k for k in losses if not _is_validation(k)]
    valid = [k for k in losses if _is_validation(k)]
    if train and valid:
        train_steps, train_values = _series(losses[sorted(train)[0]])
        valid_steps, valid_values = _series(losses[sorted(valid)[0]])
        if len(train_steps) and len(valid_steps):
            interpolated = np.interp(valid_steps, train_steps, train_values)
            gap_ax.plot(valid_steps, np.asarray(valid_values) - interpolated, color="tab:red")
            gap_ax.axhline(0.0, color="grey", linewidth=0.8)
    gap_ax.set(title="Overfitting gap (validation − train loss)", xlabel="step", ylabel="loss gap")
    for axis in (loss_ax, acc_ax):
        if axis.lines:
            axis.legend(fontsize="small")
    return _save(figure, out_dir, "learning_curves")


def total_change(data: RunWeights, out_dir: Path) -> Path | None:
    """Relative change of all weights between consecutive snapshots, and L2 distance from the first."""
    if len(data.steps) < 2:
        return None
    figure, axes = _figure(1, 2, (12, 4.5))
    step_ax, init_ax = axes[0]
    step_ax.plot(data.steps[1:], data.total_change[1:], marker="o")
    step_ax.set_yscale("log")
    step_ax.set(title="Total change between snapshots (‖ΔW‖/‖W‖)", xlabel="step", ylabel="relative change")
    init_ax.plot(data.steps, data.total_from_init, marker="o", color="tab:orange")
    init_ax.set(title="Distance from initialisation (‖W − W₀‖)", xlabel="step", ylabel="L2 distance")
    return _save(figure, out_dir, "total_change")


def layer_change(data: RunWeights, out_dir: Path) -> Path | None:
    """Each layer's relative change between consecutive snapshots."""
    if len(data.steps) < 2:
        return None
    figure, axes = _figure(1, 1, (9, 5))
    axis = axes[0][0]
    for layer in data.layers:
        axis.plot(data.steps[1:], data.step_change[layer][1:], marker=".", label=layer)
    axis.set_yscale("log")
    axis.set(title="Per-layer change over time (‖ΔW‖/‖W‖ per snapshot)", xlabel="step", ylabel="relative change")
    axis.legend(fontsize="x-small", ncol=2 if len(data.layers) > 8 else 1)
    return _save(figure, out_dir, "layer_change")


def layer_heatmap(data: RunWeights, out_dir: Path) -> Path | None:
    """Layers × snapshots, coloured by relative change on a log scale."""
    if len(data.steps) < 2:
        return None
    from matplotlib.colors import LogNorm

    matrix = np.array([data.step_change[layer][1:] for layer in data.layers], dtype=float)
    positive = matrix[np.isfinite(matrix) & (matrix > 0)]
    if positive.size == 0:
        return None
    floor = float(positive.min())
    shown = np.where(np.isfinite(matrix) & (matrix > 0), matrix, np.nan)
    figure, axes = _figure(1, 1, (max(6.0, 0.5 * matrix.shape[1] + 4), max(3.0, 0.35 * len(data.layers) + 1.5)))
    axis = axes[0][0]
    image = axis.imshow(shown, aspect="auto", cmap="viridis", norm=LogNorm(vmin=floor, vmax=float(positive.max())), interpolation="nearest")
    axis.set_yticks(range(len(data.layers)), labels=data.layers, fontsize="small")
    axis.set_xticks(range(matrix.shape[1]), labels=[str(s) for s in data.steps[1:]], fontsize="small", rotation=90)
    axis.set(title="Relative change per layer and snapshot (log colour scale)", xlabel="snapshot step")
    figure.colorbar(image, ax=axis, label="‖ΔW‖/‖W‖")
    return _save(figure, out_dir, "layer_heatmap")


def neuron_heatmap(data: RunWeights, out_dir: Path) -> Path | None:
    """One layer's units × snapshots, coloured by each unit's L2 change."""
    if data.neuron_change is None or data.neuron_layer is None:
        return None
    figure, axes = _figure(1, 1, (9, 5))
    axis = axes[0][0]
    image = axis.imshow(data.neuron_change.T, aspect="auto", cmap="magma", interpolation="nearest")
    axis.set_xticks(range(len(data.steps) - 1), labels=[str(s) for s in data.steps[1:]], fontsize="small", rotation=90)
    axis.set(title=f"Per-neuron change of {data.neuron_layer} (L2 of each unit's row)", xlabel="snapshot step", ylabel="unit (output row)")
    figure.colorbar(image, ax=axis, label="‖ΔW_row‖")
    return _save(figure, out_dir, "neuron_heatmap")


def update_ratio(data: RunWeights, out_dir: Path) -> Path | None:
    """Per-layer update-to-weight ratio ‖ΔW‖/‖W‖ per sampled step, with the 1e-3 rule of thumb."""
    ratios = {k[len(UPDATE_RATIO_PREFIX) :]: v for k, v in data.metric_history.items() if k.startswith(UPDATE_RATIO_PREFIX)}
    if not ratios:
        return None
    figure, axes = _figure(1, 1, (9, 5))
    axis = axes[0][0]
    for layer, points in sorted(ratios.items()):
        steps, values = _series(points)
        axis.plot(steps, values, label=layer)
    axis.axhline(HEALTHY_UPDATE_RATIO, color="black", linestyle="--", linewidth=1, label="1e-3 reference")
    axis.set_yscale("log")
    axis.set(title="Update-to-weight ratio per layer (‖ΔW‖/‖W‖ per step)", xlabel="step", ylabel="update / weight")
    axis.legend(fontsize="x-small")
    return _save(figure, out_dir, "update_ratio")


def weight_trajectories(data: RunWeights, out_dir: Path) -> Path | None:
    """The values of a few individual weights (those that moved most) at each snapshot."""
    if not data.traces or len(data.steps) < 2:
        return None
    figure, axes = _figure(1, 1, (9, 5))
    axis = axes[0][0]
    for label, values in data.traces.items():
        axis.plot(data.steps, values, marker=".", label=label)
    axis.set(title="Trajectories of individual weights", xlabel="step", ylabel="value")
    axis.legend(fontsize="x-small")
    return _save(figure, out_dir, "weight_trajectories")


def sparsity(data: RunWeights, out_dir: Path) -> Path | None:
    """Each pruned (or sparse) layer's fraction of zero weights over the snapshots; None when none has zeros."""
    pruned = {layer: values for layer, values in data.sparsity.items() if np.nanmax(values, initial=0.0) > 0.001}
    if not pruned or len(data.steps) < 2:
        return None
    figure, axes = _figure(1, 1, (9, 4.5))
    axis = axes[0][0]
    for layer, values in pruned.items():
        axis.plot(data.steps, values, marker="o", label=layer)
    axis.set(title="Sparsity over snapshots (fraction of zero weights)", xlabel="step", ylabel="zeros", ylim=(-0.02, 1.02))
    axis.legend(fontsize="x-small")
    return _save(figure, out_dir, "sparsity")


def activations(data: RunWeights, out_dir: Path) -> Path | None:
    """Dead units (zero fraction) and saturation per watched module over training; None without activation stats."""
    from unitrack.weights.activations import PREFIX, SATURATION

    panels = [("zero_fraction", "Dead units (fraction of zero outputs)"), (SATURATION, "Saturation (fraction near the bounds)")]
    series = {
        stat: {key[len(PREFIX) : -len(stat) - 1]: points for key, points in data.metric_history.items() if key.startswith(PREFIX) and key.endswith("/" + stat)}
        for stat, _ in panels
    }
    panels = [(stat, title) for stat, title in panels if series[stat]]
    if not panels:
        return None
    figure, axes = _figure(1, len(panels), (6 * len(panels), 4.5))
    for axis, (stat, title) in zip(axes[0], panels, strict=True):
        for module, points in sorted(series[stat].items()):
            steps, values = _series(points)
            axis.plot(steps, values, marker=".", label=module)
        axis.set(title=title, xlabel="step", ylabel="fraction", ylim=(-0.02, 1.02))
        axis.legend(fontsize="x-small")
    return _save(figure, out_dir, "activations")


BUILTIN_PLOTS: dict[str, Callable[[RunWeights, Path], Path | None]] = {
    "learning_curves": learning_curves,
    "total_change": total_change,
    "layer_change": layer_change,
    "layer_heatmap": layer_heatmap,
    "neuron_heatmap": neuron_heatmap,
    "update_ratio": update_ratio,
    "weight_trajectories": weight_trajectories,
    "sparsity": sparsity,
    "activations": activations,
}

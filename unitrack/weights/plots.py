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


def _is_validation(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in ("val", "valid", "test", "eval"))


def unrolled_steps(history: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, list[int]], bool]:
    """An x for every point, in the logged order: the step, shifted past the highest x so far each
    time the logged steps go back (the documented loop's ``step`` restarts every epoch). Walking
    every series together by time keeps them aligned (a validation point logged at the end of an
    epoch stays at that epoch's end). Returns the x per key and whether any step went back."""
    order = sorted(
        (float(p.get("time") or 0.0), rank, index, key)
        for rank, (key, points) in enumerate(history.items())
        for index, p in enumerate(points)
    )
    xs = {key: [0] * len(points) for key, points in history.items()}
    offset, last, highest, went_back = 0, None, None, False
    for _, _, index, key in order:
        step = int(history[key][index]["step"])
        if last is not None and step < last and highest is not None:
            offset, went_back = highest + 1 - step, True
        x = step + offset
        xs[key][index] = x
        last, highest = step, x if highest is None else max(highest, x)
    return xs, went_back


def _plotted(points: list[dict[str, Any]], xs: list[int]) -> tuple[list[int], list[float]]:
    finite = [
        (x, float(p["value"]))
        for x, p in zip(xs, points, strict=True)
        if isinstance(p["value"], (int, float)) and math.isfinite(p["value"])
    ]
    return [x for x, _ in finite], [v for _, v in finite]


def learning_curves(data: RunWeights, out_dir: Path) -> Path | None:
    """Loss on a log scale (train and validation), accuracy, and the overfitting gap (validation −
    train loss); a panel whose metrics the run does not have is left out, not drawn empty."""
    history = {k: v for k, v in data.metric_history.items() if "/" not in k or k.split("/")[0] in ("train", "val", "valid", "test", "eval")}
    losses = {k: v for k, v in sorted(history.items()) if "loss" in k.lower()}
    accuracies = {k: v for k, v in sorted(history.items()) if "acc" in k.lower()}
    train = [k for k in losses if not _is_validation(k)]
    valid = [k for k in losses if _is_validation(k)]
    panels = [name for name, present in (("loss", losses), ("acc", accuracies), ("gap", train and valid)) if present]
    if not panels:
        return None
    xs, went_back = unrolled_steps({**losses, **accuracies})
    xlabel = "step (continued across the steps' restarts)" if went_back else "step"
    figure, axes = _figure(1, len(panels), (5 * len(panels), 4.5))
    ax = dict(zip(panels, axes[0], strict=True))
    for panel, series, title, ylabel in (("loss", losses, "Loss (log scale)", "loss"), ("acc", accuracies, "Accuracy", "accuracy")):
        if panel not in ax:
            continue
        for key, points in series.items():
            ax[panel].plot(*_plotted(points, xs[key]), label=key, linestyle="--" if _is_validation(key) else "-")
        ax[panel].set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax[panel].legend(fontsize="small")
    if "loss" in ax:
        ax["loss"].set_yscale("log")
    if "gap" in ax:
        train_x, train_values = _plotted(losses[train[0]], xs[train[0]])
        valid_x, valid_values = _plotted(losses[valid[0]], xs[valid[0]])
        if train_x and valid_x:
            interpolated = np.interp(valid_x, train_x, train_values)
            ax["gap"].plot(valid_x, np.asarray(valid_values) - interpolated, color="tab:red")
            ax["gap"].axhline(0.0, color="grey", linewidth=0.8)
        ax["gap"].set(title="Overfitting gap (validation − train loss)", xlabel=xlabel, ylabel="loss gap")
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
    moved = np.isfinite(matrix) & (matrix > 0)
    # a column where no layer moved (a checkpoint of the weights just snapshotted) would be blank
    columns = [c for c in range(matrix.shape[1]) if moved[:, c].any()]
    if not columns:
        return None
    matrix, moved = matrix[:, columns], moved[:, columns]
    positive = matrix[moved]
    floor = float(positive.min())
    shown = np.where(moved, matrix, np.nan)
    labels = [str(data.steps[1:][c]) for c in columns]
    if len(set(labels)) < len(labels):  # steps that restart (every epoch) repeat: name the points instead
        labels = [data.points[1:][c] for c in columns]
    figure, axes = _figure(1, 1, (max(6.0, 0.5 * matrix.shape[1] + 4), max(3.0, 0.35 * len(data.layers) + 1.5)))
    axis = axes[0][0]
    image = axis.imshow(shown, aspect="auto", cmap="viridis", norm=LogNorm(vmin=floor, vmax=float(positive.max())), interpolation="nearest")
    axis.set_yticks(range(len(data.layers)), labels=data.layers, fontsize="small")
    axis.set_xticks(range(matrix.shape[1]), labels=labels, fontsize="small", rotation=90)
    axis.set(title="Relative change per layer and snapshot (log colour scale)", xlabel="snapshot")
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
    xs, went_back = unrolled_steps(ratios)
    for layer, points in sorted(ratios.items()):
        axis.plot(*_plotted(points, xs[layer]), label=layer)
    axis.axhline(HEALTHY_UPDATE_RATIO, color="black", linestyle="--", linewidth=1, label="1e-3 reference")
    axis.set_yscale("log")
    xlabel = "step (continued across the steps' restarts)" if went_back else "step"
    axis.set(title="Update-to-weight ratio per layer (‖ΔW‖/‖W‖ per step)", xlabel=xlabel, ylabel="update / weight")
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
        xs, went_back = unrolled_steps(series[stat])
        for module, points in sorted(series[stat].items()):
            axis.plot(*_plotted(points, xs[module]), marker=".", label=module)
        xlabel = "step (continued across the steps' restarts)" if went_back else "step"
        axis.set(title=title, xlabel=xlabel, ylabel="fraction", ylim=(-0.02, 1.02))
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

"""The parts of a run page that ``show --json`` does not carry: checkpoints with their verify
state, the model summary, an artifact's bytes, and the weights page's heatmaps and delta table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from unitrack.errors import RunNotFoundError
from unitrack.reading import open_run


def checkpoints(run_dir: Path, verify: bool) -> list[dict[str, Any]]:
    """The run's kept checkpoints, oldest first; with ``verify`` each one's checksums are checked
    (``ok`` true/false and the ``problems`` found), otherwise ``ok`` is None (not checked)."""
    from unitrack.checkpoint.catalog import run_checkpoints

    found = []
    reports: dict[str, Any] = {}
    if verify:
        from unitrack.checkpoint.audit import audit_run

        reports = {report.name: report for report in audit_run(run_dir)}
    for info in run_checkpoints(run_dir):
        report = reports.get(info.name)
        found.append(
            {
                "name": info.name,
                "epoch": info.epoch,
                "step": info.step,
                "metrics": info.metrics,
                "is_best": info.is_best,
                "ok": None if report is None else report.ok,
                "problems": [] if report is None else report.problems,
            }
        )
    return found


def model_summary(run_dir: Path, artifacts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What ``tracker.watch`` recorded of the model and its training set-up (``model/summary.json``)."""
    try:
        data = json.loads(artifact_file(run_dir, artifacts, "model/summary.json").read_text(encoding="utf-8"))
    except (RunNotFoundError, OSError, ValueError):  # not recorded (no watch()), or unreadable
        return None
    return data if isinstance(data, dict) else None


def artifact_file(run_dir: Path, artifacts: list[dict[str, Any]], name: str) -> Path:
    """The file of the run's artifact ``name`` — only a name the run recorded, only a regular file
    that really lies inside the run's folder (``..``, absolute paths and symlinks out are refused)."""
    for artifact in artifacts:
        if artifact.get("name") == name:
            relative = str(artifact.get("path") or "")
            break
    else:
        raise RunNotFoundError(f"run {run_dir.name} has no artifact {name!r}")
    root = run_dir.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise RunNotFoundError(f"artifact {name!r} of run {run_dir.name} is not a file in its folder")
    return target


def _finite(values: list[float]) -> list[float | None]:
    return [v if v is not None and math.isfinite(v) else None for v in values]


def weights_page(store: Any, ref: str) -> dict[str, Any]:
    """Per-layer change over the run's snapshots and checkpoints (the heatmaps) and the per-layer
    table of ``unitrack delta RUN --json`` (first weights to final weights).

    ``activations`` holds the run's activation statistics (``watch(activations_every=)``), or None.
    """
    from unitrack.weights.compare import run_delta
    from unitrack.weights.trajectory import run_weights

    moved = run_weights(store, ref)
    activations = activation_stats(open_run(ref, store))
    if not moved.steps:
        return {"run_id": moved.run_id, "steps": [], "layers": [], "delta": None, "activations": activations}
    return {
        "run_id": moved.run_id,
        "steps": moved.steps,
        "points": moved.points,
        "layers": moved.layers,
        "step_change": {layer: _finite(moved.step_change[layer]) for layer in moved.layers},
        "from_init": {layer: _finite(moved.from_init[layer]) for layer in moved.layers},
        "norm": {layer: _finite(moved.norm[layer]) for layer in moved.layers},
        "neuron_layer": moved.neuron_layer,
        "neuron_change": None if moved.neuron_change is None else [_finite(row) for row in moved.neuron_change.tolist()],
        "delta": run_delta(store, ref).to_dict() if len(moved.steps) > 1 else None,
        "activations": activations,
    }


def activation_stats(view: Any) -> dict[str, Any] | None:
    """Per watched module: its last value of each statistic, its zero and saturation fractions over
    the sampled steps, and the layers ``explain`` would call dead or saturated."""
    from unitrack.analysis.activations import describe, unhealthy_layers
    from unitrack.weights.activations import PREFIX, SATURATION, STATS

    keys = [key for key in view.metric_keys if key.startswith(PREFIX)]
    if not keys:
        return None
    curves = {key: (*view.history(key), False) for key in keys}
    layers: dict[str, dict[str, Any]] = {}
    steps: set[int] = set()
    for key, (key_steps, values, _) in curves.items():
        layer, _, stat = key[len(PREFIX) :].rpartition("/")
        entry = layers.setdefault(layer, {"layer": layer, "last": {}, "series": {}})
        entry["last"][stat] = _finite([float(values[-1])])[0] if len(values) else None
        if stat in ("zero_fraction", SATURATION):
            entry["series"][stat] = {int(s): v for s, v in zip(key_steps.tolist(), _finite(values.tolist()), strict=True)}
            steps.update(int(s) for s in key_steps.tolist())
    ordered = sorted(steps)
    for entry in layers.values():
        entry["series"] = {stat: [points.get(step) for step in ordered] for stat, points in entry["series"].items()}
    return {
        "stats": [*STATS, SATURATION],
        "steps": ordered,
        "layers": list(layers.values()),
        "unhealthy": [describe(finding) for finding in unhealthy_layers(curves)],
    }

"""Naming weights on the command line: a run's snapshots and checkpoints, a file, a backend run.

- ``RUN`` (id, prefix, ``latest``): the run's final weights (its last checkpoint or snapshot);
  ``RUN@best``, ``RUN@last``, ``RUN@first``, ``RUN@STEP`` or ``RUN@NAME`` pick one.
- a path: a ``.safetensors`` / ``.pt`` / ``.pth`` file, or a folder holding one (a checkpoint
  folder, a downloaded W&B artifact folder).
- ``mlflow:RUN_ID[/ARTIFACT_PATH]``: an MLflow run's checkpoint artifact, downloaded on demand
  (only the one weights file) with MLflow's own client from ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitrack.checkpoint.catalog import run_checkpoints
from unitrack.checkpoint.registry import CheckpointInfo
from unitrack.store.layout import RunPaths
from unitrack.weights.snapshots import list_manifests, read_manifest
from unitrack.weights.sources import TORCH_SUFFIXES, ArraySource, ManifestSource, WeightSource, file_source

MLFLOW_SCHEME = "mlflow:"


@dataclass(frozen=True)
class WeightPoint:
    """One saved state of a run's weights: a snapshot or a checkpoint."""

    name: str
    step: int
    kind: str  # "snapshot" | "checkpoint"
    is_best: bool
    open: Callable[[], WeightSource]


def run_weight_points(store: Any, ref: str) -> list[WeightPoint]:
    """Every snapshot and checkpoint of the run ``ref`` names, by step (snapshots first on a tie)."""
    from unitrack.reading import open_run

    run = open_run(ref, store)
    if run.path is None:
        raise ValueError(f"{ref}: weights are read from a local run's folder; {run.source} runs have none here")
    paths = RunPaths(run.path)
    points: list[tuple[int, int, int, WeightPoint]] = []
    for order, manifest in enumerate(list_manifests(paths.root)):
        step = int(read_manifest(manifest).get("step") or 0)
        label = f"{paths.run_id}@{manifest.stem}"
        opener = _manifest_opener(store.root, manifest, label)
        points.append((step, 0, order, WeightPoint(manifest.stem, step, "snapshot", False, opener)))
    for order, checkpoint in enumerate(run_checkpoints(paths.root)):
        opener = _checkpoint_opener(checkpoint, f"{paths.run_id}@{checkpoint.name}")
        point = WeightPoint(checkpoint.name, checkpoint.step, "checkpoint", checkpoint.is_best, opener)
        points.append((checkpoint.step, 1, order, point))
    return [point for *_, point in sorted(points, key=lambda p: p[:3])]


def _manifest_opener(root: Path, manifest: Path, label: str) -> Callable[[], WeightSource]:
    return lambda: ManifestSource(root, manifest, label)


def _checkpoint_opener(info: CheckpointInfo, label: str) -> Callable[[], WeightSource]:
    """Plain checkpoints are streamed from their safetensors file; compressed or encrypted ones
    cannot be memory-mapped and are read whole, verified, by the checkpoint package."""

    def open_checkpoint() -> WeightSource:
        plain = info.path / "model.safetensors"
        if plain.is_file():
            return file_source(plain, label)
        from unitrack.checkpoint.storage import read_weights

        return ArraySource.of(read_weights(info.path, info.sha256), label)

    return open_checkpoint


def pick_point(points: list[WeightPoint], selector: str | None, run: str) -> WeightPoint:
    """The point ``selector`` names: None/last (final weights: the last checkpoint, else snapshot),
    best, first, a step number (the last point at or before it), or a snapshot / checkpoint name."""
    if not points:
        raise ValueError(f"run {run} has no weight snapshots or checkpoints")
    if selector in (None, "", "last", "final"):
        checkpoints = [p for p in points if p.kind == "checkpoint"]
        last = points[-1]
        return checkpoints[-1] if checkpoints and checkpoints[-1].step >= last.step else last
    if selector == "best":
        best = [p for p in points if p.is_best]
        if not best:
            raise ValueError(f"run {run} has no best checkpoint")
        return best[-1]
    if selector in ("first", "init"):
        return points[0]
    if selector.isdigit():
        step = int(selector)
        earlier = [p for p in points if p.step <= step]
        if not earlier:
            raise ValueError(f"run {run} has no weights at or before step {step} (first: step {points[0].step})")
        return earlier[-1]
    named = [p for p in points if p.name == selector]
    if not named:
        raise ValueError(f"run {run} has no snapshot or checkpoint named {selector!r}")
    return named[-1]


def open_run_weights(store: Any, ref: str) -> WeightSource | None:
    """The weights ``RUN[@SELECTOR]`` names (default: the final ones); None when the run has none."""
    run, _, selector = ref.partition("@")
    points = run_weight_points(store, run)
    return pick_point(points, selector or None, run).open() if points else None


def open_weights(store: Any, ref: str) -> WeightSource:
    """The weights ``ref`` names (see the module docstring)."""
    if ref.startswith(MLFLOW_SCHEME):
        return mlflow_source(ref[len(MLFLOW_SCHEME) :])
    path = Path(ref).expanduser()
    if path.exists() and (path.is_dir() or path.suffix in (".safetensors", *TORCH_SUFFIXES)):
        return file_source(path)
    run, _, selector = ref.partition("@")
    return pick_point(run_weight_points(store, run), selector or None, run).open()


def mlflow_source(spec: str) -> WeightSource:
    """An MLflow run's weights artifact: the one file named, or its newest ``model.safetensors``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    run_id, _, artifact_path = spec.partition("/")
    client = MlflowClient()
    if not artifact_path or not artifact_path.endswith((".safetensors", *TORCH_SUFFIXES)):
        artifact_path = _mlflow_weights_path(client, run_id, artifact_path)
    cache = Path(os.environ.get("UNITRACK_CACHE") or tempfile.gettempdir()) / "unitrack-mlflow" / run_id
    cache.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(cache))
    return file_source(Path(local), f"mlflow:{run_id}/{artifact_path}")


def _mlflow_weights_path(client: Any, run_id: str, under: str) -> str:
    found: list[str] = []
    pending = [under or None]
    while pending:
        for info in client.list_artifacts(run_id, pending.pop()):
            if info.is_dir:
                pending.append(info.path)
            elif info.path.endswith((".safetensors", *TORCH_SUFFIXES)) and Path(info.path).stem != "state":
                found.append(info.path)
    if not found:
        raise FileNotFoundError(f"MLflow run {run_id} has no weights artifact (.safetensors, .pt) under {under or '/'}")
    models = sorted(p for p in found if Path(p).stem == "model") or sorted(found)
    return models[-1]

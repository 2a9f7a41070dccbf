"""Snapshots in a run: content-addressed storage, watch schedules, gradients, retention, clean-up, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import journal, metric_points, quiet_config
from unitrack import ExperimentTracker
from unitrack.store.runs import RunStore
from unitrack.weights.compare import summarize_run_delta
from unitrack.weights.objects import objects_root
from unitrack.weights.refs import open_weights, run_weight_points
from unitrack.weights.snapshots import collect_snapshot_objects, list_manifests, remove_run_snapshots


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def small_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(16, model[0].in_features)).pow(2).mean().backward()
        optimizer.step()


def test_ten_snapshots_with_a_large_frozen_layer_cost_barely_more_than_one(store_dir: Path) -> None:
    torch.manual_seed(0)
    frozen = torch.nn.Linear(512, 512)  # 1 MiB of float32, never trained
    head = torch.nn.Linear(512, 4)
    frozen.requires_grad_(False)
    model = torch.nn.Sequential(frozen, head)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    with ExperimentTracker("frozen", quiet_config()) as tracker:
        tracker.snapshot_weights(model, step=0)
        tracker.flush()
        one = folder_bytes(objects_root(store_dir))
        for step in range(1, 10):
            optimizer.zero_grad()
            model(torch.randn(8, 512)).sum().backward()
            optimizer.step()
            tracker.snapshot_weights(model, step=step)
    ten = folder_bytes(objects_root(store_dir))
    manifests = folder_bytes(tracker.run_dir / "snapshots")
    assert len(list_manifests(tracker.run_dir)) == 10
    assert one > 1_000_000
    assert ten - one == 9 * (4 * 512 * 4 + 4 * 4)  # only the head's new values
    assert ten + manifests < 1.1 * one
    first, last = (json.loads(p.read_text()) for p in (list_manifests(tracker.run_dir)[0], list_manifests(tracker.run_dir)[-1]))
    assert first["tensors"]["0.weight"]["digest"] == last["tensors"]["0.weight"]["digest"]
    assert first["tensors"]["1.weight"]["digest"] != last["tensors"]["1.weight"]["digest"]


def test_snapshot_events_and_manifests(store_dir: Path) -> None:
    model = small_model()
    with ExperimentTracker("snap", quiet_config()) as tracker:
        tracker.log_metrics({"loss": 1.0})
        info = tracker.snapshot_weights(model, tag="after warm-up")
    events = [e for e in journal(tracker.run_dir) if e["kind"] == "snapshot"]
    assert events == [{**events[0], "name": info.name, "step": 1, "tag": "after warm-up", "manifest": info.manifest.relative_to(store_dir).as_posix()}]
    manifest = json.loads(info.manifest.read_text())
    assert manifest["tensors"]["0.weight"]["shape"] == [8, 4] and manifest["tensors"]["0.weight"]["dtype"] == "float32"
    restored = open_weights(RunStore(store_dir), tracker.run_id).array("2.weight")
    assert np.array_equal(restored, model[2].weight.detach().numpy())


def test_numpy_dicts_and_bfloat16_are_snapshotted(store_dir: Path) -> None:
    weights = {"dense": {"kernel": np.arange(6, dtype=np.float64).reshape(2, 3)}, "emb": torch.ones(3, 2, dtype=torch.bfloat16)}
    with ExperimentTracker("np", quiet_config()) as tracker:
        tracker.snapshot_weights(weights, step=0)
        weights["dense"]["kernel"] = weights["dense"]["kernel"] + 1.0
        tracker.snapshot_weights(weights, step=1)
    data = summarize_run_delta(RunStore(store_dir), f"{tracker.run_id}@0", f"{tracker.run_id}@1")
    assert data is not None
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["dense.kernel"]["l2"] == pytest.approx(np.sqrt(6)) and layers["dense.kernel"]["max_abs"] == 1.0
    assert layers["emb"]["l2"] == 0.0 and layers["emb"]["cosine"] == pytest.approx(1.0)


def test_keras_model_weights_are_snapshotted(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # Keras 3 on the torch we already have
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with ExperimentTracker("keras", quiet_config()) as tracker:
        info = tracker.snapshot_weights(model)
    assert info.tensors == 2
    kernel = open_weights(RunStore(store_dir), tracker.run_id)
    assert any(name.endswith("kernel") for name in kernel.tensors())
    assert np.allclose(kernel.array(next(n for n in kernel.tensors() if n.endswith("kernel"))), model.layers[0].kernel.numpy())


def test_watch_snapshots_on_schedule_and_logs_gradient_statistics(store_dir: Path) -> None:
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = list(range(4))  # an "epoch" of four batches
    with ExperimentTracker("watch", quiet_config()) as tracker:
        tracker.watch(model, optimizer, dataloader=loader, snapshot_every="epoch", gradients=True, log_every=3)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        train(model, optimizer, 3)  # the third step is sampled
        after_third = {n: p.detach().clone() for n, p in model.named_parameters()}
        train(model, optimizer, 7)
    steps = [e["step"] for e in journal(tracker.run_dir) if e["kind"] == "snapshot"]
    assert steps == [0, 4, 8, 10]  # initial, every epoch, and the final weights
    store = RunStore(store_dir)
    change = summarize_run_delta(store, f"{tracker.run_id}@4", f"{tracker.run_id}@8")
    assert change is not None
    assert metric_points(tracker.run_dir, "weights/change_l2")[1] == (8, pytest.approx(change["total"]["l2"]))
    assert [s for s, _ in metric_points(tracker.run_dir, "weights/change_relative")] == [4, 8, 10]
    ratios = metric_points(tracker.run_dir, "update_ratio/2.weight")
    grads = metric_points(tracker.run_dir, "grad_norm/2.weight")
    assert [s for s, _ in ratios] == [3, 6, 9] and [s for s, _ in grads] == [3, 6, 9]
    assert before["2.weight"].shape == after_third["2.weight"].shape
    # plain SGD: the update is lr * grad, so the ratio is lr * ‖g‖ / ‖W‖ at the sampled step
    weight_norm = after_third["2.weight"].norm().item()
    assert ratios[0][1] == pytest.approx(0.05 * grads[0][1] / weight_norm, rel=1e-4)


def test_watch_rejects_a_schedule_it_cannot_follow(store_dir: Path) -> None:
    model = small_model()
    with ExperimentTracker("bad", quiet_config()) as tracker:
        with pytest.raises(ValueError, match="optimizer"):
            tracker.watch(model, snapshot_every=5)
        with pytest.raises(ValueError, match="dataloader"):
            tracker.watch(model, torch.optim.SGD(model.parameters(), lr=0.1), snapshot_every="epoch")
        with pytest.raises(ValueError, match="snapshot_every"):
            tracker.watch(model, torch.optim.SGD(model.parameters(), lr=0.1), snapshot_every=0)


def test_retention_thins_old_snapshots_and_clean_frees_objects(store_dir: Path) -> None:
    model = small_model()
    config = quiet_config(weights={"keep_recent": 2, "thin_every": 2})
    with ExperimentTracker("thin", config) as tracker:
        for step in range(8):
            with torch.no_grad():
                model[0].weight.add_(1.0)
            tracker.snapshot_weights(model, step=step)
    kept = [p.name.split("-")[0] for p in list_manifests(tracker.run_dir)]
    assert kept == ["000000", "000002", "000004", "000006", "000007"]
    with ExperimentTracker("other", quiet_config()) as other:
        other.snapshot_weights(small_model(1), step=0)
    files, freed = collect_snapshot_objects(store_dir, grace_s=0)
    assert files == 3 and freed == 3 * 8 * 4 * 4  # the thinned snapshots' first-layer weights
    remove_run_snapshots(store_dir, tracker.run_id, grace_s=0)
    assert not (tracker.run_dir / "snapshots").exists()
    assert open_weights(RunStore(store_dir), other.run_id).tensors()  # the other run's objects stay
    remaining = {p.parent.name + p.name for p in objects_root(store_dir).rglob("*") if p.is_file()}
    other_manifest = json.loads(list_manifests(other.run_dir)[0].read_text())
    assert remaining == {t["digest"] for t in other_manifest["tensors"].values()}


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_checkpoints_count_as_weights_and_runs_compare(store_dir: Path, compression: str) -> None:
    model_a, model_b = small_model(0), small_model(1)
    with ExperimentTracker("a", quiet_config(checkpointing={"compression": compression})) as run_a:
        run_a.snapshot_weights(model_a, step=0)
        run_a.save_checkpoint(model_b, epoch=1, step=10, is_best=True)
        with torch.no_grad():
            model_a[2].bias.add_(3.0)
        last = run_a.save_checkpoint(model_a, epoch=2, step=20, is_best=False)
    with ExperimentTracker("b", quiet_config()) as run_b:
        pass
    store = RunStore(store_dir)
    points = run_weight_points(store, run_a.run_id)
    assert [(p.kind, p.step, p.is_best) for p in points] == [("snapshot", 0, False), ("checkpoint", 10, True), ("checkpoint", 20, False)]
    data = summarize_run_delta(store, f"{run_a.run_id}@0", run_a.run_id)  # initial snapshot vs last checkpoint
    assert data is not None and last is not None and data["source_b"].endswith(last.name)
    assert data["layers"][0]["name"] == "2.bias" and data["layers"][0]["max_abs"] == pytest.approx(3.0)
    assert all(layer["l2"] == 0.0 for layer in data["layers"][1:])
    best = open_weights(store, f"{run_a.run_id}@best")
    assert np.array_equal(best.array("0.weight"), model_b[0].weight.detach().numpy())
    assert summarize_run_delta(store, run_a.run_id, run_b.run_id) is None  # b has no weights


def test_a_snapshot_keeps_the_values_of_its_moment_while_training_goes_on(store_dir: Path) -> None:
    model = small_model()
    with ExperimentTracker("moment", quiet_config()) as tracker:
        expected = model[0].weight.detach().clone()
        info = tracker.snapshot_weights(model, step=0)
        with torch.no_grad():  # the next optimizer step, while the snapshot is written in the background
            model[0].weight.mul_(-3.0)
        tracker.flush()
    stored = open_weights(RunStore(store_dir), f"{tracker.run_id}@{info.name}").array("0.weight")
    assert np.array_equal(stored, expected.numpy())


def test_histograms_of_weights_and_gradients_are_journaled(store_dir: Path) -> None:
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ExperimentTracker("hist", quiet_config(weights={"histograms": True})) as tracker:
        tracker.watch(model, optimizer, snapshot_every=2, gradients=True, log_every=2)
        train(model, optimizer, 2)
    histograms = [e for e in journal(tracker.run_dir) if e["kind"] == "histogram"]
    gradients = [h for h in histograms if all(name.startswith("grad/") for name in h["values"])]
    weights = [h for h in histograms if h not in gradients]
    assert [h["step"] for h in weights] == [0, 2] and [h["step"] for h in gradients] == [2]
    first = weights[0]["values"]["0.weight"]
    values = model[0].weight.detach().numpy()
    assert sum(first["bucket_counts"]) == first["num"] == values.size
    assert len(first["bucket_limits"]) == len(first["bucket_counts"])
    assert set(gradients[0]["values"]) == {"grad/0.weight", "grad/0.bias", "grad/2.weight", "grad/2.bias"}


def test_a_jax_pytree_is_snapshotted_and_its_deltas_match_numpy(store_dir: Path) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    params = {
        "dense1": {"kernel": jax.random.normal(keys[0], (4, 8)), "bias": jnp.zeros(8)},
        "dense2": {"kernel": jax.random.normal(keys[1], (8, 2)).astype(jnp.bfloat16), "bias": jnp.zeros(2)},
    }

    def loss(p: Any, x: Any) -> Any:
        hidden = jnp.tanh(x @ p["dense1"]["kernel"] + p["dense1"]["bias"])
        return jnp.mean((hidden @ p["dense2"]["kernel"].astype(jnp.float32) + p["dense2"]["bias"]) ** 2)

    grads = jax.grad(loss)(params, jnp.ones((3, 4)))
    stepped = dict(params, dense1=jax.tree_util.tree_map(lambda w, g: w - 0.1 * g, params["dense1"], grads["dense1"]))
    with ExperimentTracker("jax", quiet_config()) as tracker:
        tracker.snapshot_weights(params, step=0)
        tracker.snapshot_weights(stepped, step=1)
    data = summarize_run_delta(RunStore(store_dir), f"{tracker.run_id}@0", f"{tracker.run_id}@1")
    assert data is not None
    layers = {layer["name"]: layer for layer in data["layers"]}
    moved = np.asarray(stepped["dense1"]["kernel"], dtype=np.float64) - np.asarray(params["dense1"]["kernel"], dtype=np.float64)
    assert layers["dense1.kernel"]["l2"] == pytest.approx(np.linalg.norm(moved), rel=1e-6)
    assert layers["dense2.kernel"]["l2"] == 0.0  # a bfloat16 leaf left alone: stored once, no change

"""Checksums: BLAKE3 in new checkpoints, SHA-256 ones of earlier versions still loading and verifying,
every damaged tensor named, and the one hashing module everyone calls."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import blake3
import pytest
import torch
from typer.testing import CliRunner

import unitrack as ut
from tests.checkpoint_helpers import config, make_model, train_step
from unitrack.checkpoint.registry import CheckpointInfo
from unitrack.checkpoint.storage import checkpoint_algorithm, read_checkpoint, verify_checkpoint
from unitrack.hashing import BLAKE3, SHA256, digest_bytes, digest_file, digest_path, label_of, new_hasher

LEGACY = Path(__file__).parent / "data" / "sha256-checkpoint"
# the SHA-256 of its manifest.json, as the registry of the version that wrote it recorded
LEGACY_MANIFEST_SHA = "11bffa06465536905b1b787d0f39f606b10aa2eee52f351e88bf1122cd22c931"
runner = CliRunner()


def legacy_model() -> torch.nn.Module:
    """The model the fixture was saved from (its weights; the fixture's SGD momentum is one step's gradient)."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) * 0.25 - i)
    return model


def tensor_ranges(path: Path) -> dict[str, tuple[int, int]]:
    """Each tensor's byte range in a safetensors file."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header.pop("__metadata__", None)
    return {name: (8 + length + e["data_offsets"][0], 8 + length + e["data_offsets"][1]) for name, e in header.items()}


def test_the_hashing_module_makes_blake3_and_sha256(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40_000
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert digest_bytes(data) == blake3.blake3(data).hexdigest()  # BLAKE3 is the default
    assert digest_bytes(data, SHA256) == hashlib.sha256(data).hexdigest()
    assert digest_file(path, BLAKE3) == (blake3.blake3(data).hexdigest(), len(data))
    assert digest_file(path, SHA256, threads=2) == (hashlib.sha256(data).hexdigest(), len(data))
    hasher = new_hasher(BLAKE3, threads=2)
    hasher.update(data[:1000])
    hasher.update(memoryview(data)[1000:])
    assert hasher.hexdigest() == blake3.blake3(data).hexdigest()
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_bytes(b"a")
    size, first = digest_path(tmp_path / "folder")
    (tmp_path / "folder" / "a.txt").write_bytes(b"b")
    assert size == 1 and digest_path(tmp_path / "folder")[1] != first
    assert (label_of(BLAKE3), label_of(SHA256)) == ("BLAKE3", "SHA-256")
    with pytest.raises(ValueError, match="unknown checksum algorithm 'md5'"):
        new_hasher("md5")


def test_a_sha256_checkpoint_of_the_previous_version_loads_and_verifies(tmp_path: Path) -> None:
    folder = tmp_path / "legacy"
    shutil.copytree(LEGACY, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "unitrack.checkpoint/1" and "algorithm" not in manifest
    assert verify_checkpoint(folder, LEGACY_MANIFEST_SHA) == []
    assert checkpoint_algorithm(folder) == SHA256

    expected = legacy_model()
    expected(torch.ones(2, 4)).sum().backward()  # the step whose momentum the fixture holds
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with ut.experiment_tracking("legacy", config()) as tracker:
        assert tracker.load_checkpoint(folder, model, optimizer) == (3, 42)
    for key, value in expected.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    for param, reference in zip(model.parameters(), expected.parameters(), strict=True):
        assert reference.grad is not None
        assert torch.equal(optimizer.state[param]["momentum_buffer"], reference.grad)

    # one flipped byte in a SHA-256 checkpoint is still found, and named with its algorithm
    start, _ = tensor_ranges(folder / "model.safetensors")["1.weight"]
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[start] ^= 0x10
    (folder / "model.safetensors").write_bytes(bytes(data))
    assert "model.safetensors: tensor '1.weight' fails its SHA-256" in verify_checkpoint(folder)


def test_new_checkpoints_name_blake3_in_their_manifest() -> None:
    with ut.experiment_tracking("blake3", config(async_save=False)) as tracker:
        info = tracker.save_checkpoint(make_model(), 0, 0)
    assert info is not None
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert manifest["format"] == "unitrack.checkpoint/2" and manifest["algorithm"] == "blake3"
    entry = manifest["files"]["model.safetensors"]
    ranges = tensor_ranges(info.path / "model.safetensors")
    data = (info.path / "model.safetensors").read_bytes()
    for name, (start, stop) in ranges.items():
        assert entry["tensors"][name] == blake3.blake3(data[start:stop]).hexdigest(), name
    assert manifest["files"]["state.json"]["digest"] == blake3.blake3((info.path / "state.json").read_bytes()).hexdigest()
    # the registry still keeps the SHA-256 of manifest.json
    assert info.sha256 == hashlib.sha256((info.path / "manifest.json").read_bytes()).hexdigest()


@pytest.mark.parametrize("file_name", ["model.safetensors", "state.safetensors"])
def test_a_flipped_byte_in_any_tensor_is_detected_and_named(file_name: str) -> None:
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters())
    train_step(model, optimizer)
    with ut.experiment_tracking("flips", config(async_save=False)) as tracker:
        info = tracker.save_checkpoint(model, 0, 0, optimizer)
    assert info is not None
    path = info.path / file_name
    original = path.read_bytes()
    ranges = tensor_ranges(path)
    assert len(ranges) >= 4
    for name, (start, stop) in ranges.items():
        if stop == start:
            continue
        for offset in {start, (start + stop) // 2, stop - 1}:
            damaged = bytearray(original)
            damaged[offset] ^= 0x80
            path.write_bytes(bytes(damaged))
            problems = verify_checkpoint(info.path, info.sha256)
            named = [p for p in problems if p.startswith(f"{file_name}: tensor ")]
            assert named == [f"{file_name}: tensor {name!r} fails its BLAKE3"], (name, offset, problems)
            with pytest.raises(ut.CheckpointCorruptError, match=name.replace(".", r"\.")):
                read_checkpoint(info.path, info.sha256)
    path.write_bytes(original)
    assert verify_checkpoint(info.path, info.sha256) == []


def test_a_cut_short_file_and_a_changed_header_are_named() -> None:
    with ut.experiment_tracking("cut", config(async_save=False)) as tracker:
        info = tracker.save_checkpoint(make_model(), 0, 0)
    assert info is not None
    path = info.path / "model.safetensors"
    original = path.read_bytes()
    path.write_bytes(original[:-3])
    problems = verify_checkpoint(info.path)
    assert any("truncated inside tensor" in p for p in problems), problems
    header = original.replace(b'"F32"', b'"I32"', 1)
    path.write_bytes(header)
    assert "model.safetensors: file fails its BLAKE3 (its header changed)" in verify_checkpoint(info.path)


def test_loaded_tensors_are_copy_on_write_views_that_never_change_the_file() -> None:
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters())
    train_step(model, optimizer)
    with ut.experiment_tracking("cow", config(async_save=False)) as tracker:
        info = tracker.save_checkpoint(model, 0, 0, optimizer)
        assert info is not None
        before = (info.path / "state.safetensors").read_bytes()
        state = read_checkpoint(info.path, info.sha256)
        for tensor in [*state.model.values(), *state.tensors.values()]:
            tensor.add_(1) if tensor.is_floating_point() else tensor.zero_()
        fresh = make_model(3)
        fresh_optimizer = torch.optim.Adam(fresh.parameters())
        tracker.load_checkpoint(info, fresh, fresh_optimizer)
        train_step(fresh, fresh_optimizer)  # Adam updates its restored state in place
        assert (info.path / "state.safetensors").read_bytes() == before
        assert verify_checkpoint(info.path, info.sha256) == []


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int8, torch.float64, torch.bool])
def test_every_dtype_round_trips_through_the_mapped_load(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    weights = {
        "w": (torch.randn(33, 7) * 50).to(dtype),
        "empty": torch.zeros(0, 3, dtype=dtype),
        "scalar": torch.tensor(1, dtype=dtype),
    }
    with ut.experiment_tracking("dtypes", config(async_save=False)) as tracker:
        info = tracker.save_checkpoint(weights, 0, 0)
        assert info is not None
        loaded = read_checkpoint(info.path, info.sha256).weights()
    for name, tensor in weights.items():
        assert loaded[name].dtype == dtype and torch.equal(loaded[name], tensor), name


def test_verify_says_which_algorithm_it_checked() -> None:
    from unitrack.cli.app import app

    with ut.experiment_tracking("both", config(async_save=False)) as tracker:
        info = tracker.save_checkpoint(make_model(), 0, 0)
        legacy = tracker.run_dir / "checkpoints" / "legacy"
        shutil.copytree(LEGACY, legacy)
        tracker._role.checkpoints().registry.add(
            CheckpointInfo(name="legacy", path=legacy, epoch=3, step=42, sha256=LEGACY_MANIFEST_SHA)
        )
        run_id = tracker.run_id
    assert info is not None
    result = runner.invoke(app, ["verify", run_id])
    assert result.exit_code == 0, result.output
    assert f"ok       {run_id}/{info.name}  {info.path}  (BLAKE3)" in result.output
    assert f"ok       {run_id}/legacy  {legacy}  (SHA-256)" in result.output
    reports = json.loads(runner.invoke(app, ["verify", run_id, "--json"]).output)
    assert {r["name"]: r["algorithm"] for r in reports} == {info.name: "blake3", "legacy": "sha256"}


def test_a_sha256_snapshot_of_the_previous_version_is_read_compared_and_kept_by_collection(store_dir: Path) -> None:
    import numpy as np

    from unitrack.weights.compare import compare_sources
    from unitrack.weights.objects import object_path
    from unitrack.weights.snapshots import collect_snapshot_objects, list_manifests
    from unitrack.weights.sources import ManifestSource

    weights = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(3, np.float32)}
    with ut.experiment_tracking("snapshots", config()) as tracker:
        run_dir = tracker.run_dir
        # what the SHA-256 version wrote: objects/sha256/ab/cd..., a format-1 manifest naming no algorithm
        entries = {}
        for name, array in weights.items():
            digest = hashlib.sha256(array.tobytes()).hexdigest()
            path = object_path(store_dir, digest, SHA256)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(array.tobytes())
            entries[name] = {"digest": digest, "shape": list(array.shape), "dtype": "float32"}
        legacy = run_dir / "snapshots" / "000000-step0.json"
        legacy.parent.mkdir(parents=True, exist_ok=True)
        legacy.write_text(json.dumps({"format": 1, "name": "000000-step0", "step": 0, "tag": None, "tensors": entries}))
        moved = {**weights, "w": weights["w"] + 0.5}
        tracker.snapshot_weights(moved, step=1)
        tracker.flush()
    newer = json.loads(list_manifests(run_dir)[-1].read_text())
    assert newer["algorithm"] == "blake3" and newer["format"] == 2
    assert newer["tensors"]["w"]["digest"] == blake3.blake3(moved["w"].tobytes()).hexdigest()
    old, new = (ManifestSource(store_dir, path) for path in list_manifests(run_dir))
    assert np.array_equal(old.array("w"), weights["w"])
    delta = compare_sources(old, new).by_name()["w"].delta
    assert delta.l1 == 6.0 and delta.changed == 12
    assert compare_sources(old, new).by_name()["b"].delta.l2 == 0.0
    assert collect_snapshot_objects(store_dir, grace_s=0.0) == (0, 0)  # both algorithms' objects still referenced
    assert object_path(store_dir, entries["w"]["digest"], SHA256).exists()

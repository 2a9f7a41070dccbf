"""Checkpoints: what a user relies on — exact restores, checksums, retention, failures that keep old ones."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import unitrack as ut
from tests.checkpoint_helpers import config, flip_last_tensor_byte, make_model, train_step
from tests.conftest import journal

runner = CliRunner()


def test_seed_003_snippet_restores_the_best_epoch_exactly() -> None:
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    val_losses = [0.9, 0.4, 0.6, 0.5]
    best_val_loss = math.inf
    with ut.experiment_tracking("my_experiment", config(max_checkpoints=2)) as tracker:
        for epoch, val_loss in enumerate(val_losses):
            step = epoch * 10
            train_loss = train_step(model, optimizer)
            checkpoint_path = tracker.save_checkpoint(
                model=model,
                epoch=epoch,
                step=step,
                optimizer=optimizer,
                train_loss=train_loss,
                val_loss=val_loss,
                is_best=(val_loss < best_val_loss),
            )
            assert checkpoint_path is not None
            if val_loss < best_val_loss:
                best_val_loss = val_loss
                expected_weights = {k: v.clone() for k, v in model.state_dict().items()}
                expected_momentum = [optimizer.state[p]["momentum_buffer"].clone() for p in model.parameters()]

        # Load best checkpoint
        best_checkpoint = tracker.get_best_checkpoint()
        if best_checkpoint:
            epoch, step = tracker.load_checkpoint(best_checkpoint, model, optimizer)

        assert (epoch, step) == (1, 10)
        for key, value in model.state_dict().items():
            assert torch.equal(value, expected_weights[key]), key
        for param, momentum in zip(model.parameters(), expected_momentum, strict=True):
            assert torch.equal(optimizer.state[param]["momentum_buffer"], momentum)
        # max_checkpoints 2: the best (epoch 1) and the last (epoch 3) survive
        assert [c.epoch for c in tracker.list_checkpoints()] == [1, 3]
        assert tracker.load_best(make_model(1)) == (1, 10)


def test_files_are_safetensors_and_json_and_the_journal_has_the_documented_events() -> None:
    model = make_model()
    with ut.experiment_tracking("files", config(keep_last=1)) as tracker:
        first = tracker.save_checkpoint(model, epoch=0, step=0, loss=1.0)
        second = tracker.save_checkpoint(model, epoch=1, step=5, loss=0.5)
        tracker.flush()
        run_dir = tracker.run_dir
    assert first is not None and second is not None
    assert sorted(p.name for p in second.path.iterdir()) == [
        "manifest.json", "model.safetensors", "state.json", "state.safetensors"
    ]
    assert second.path.parent == run_dir / "checkpoints"
    assert set(load_file(second.path / "model.safetensors")) == set(model.state_dict())
    assert not first.path.exists()  # keep_last 1
    registry = json.loads((run_dir / "checkpoints.json").read_text())
    assert [c["name"] for c in registry["checkpoints"]] == [second.name]
    events = [e for e in journal(run_dir) if e["kind"].startswith("checkpoint")]
    assert [e["kind"] for e in events] == ["checkpoint", "checkpoint", "checkpoint_removed"]
    saved = events[1]
    assert {k: saved[k] for k in ("name", "path", "epoch", "step", "metrics")} == {
        "name": second.name, "path": str(second.path), "epoch": 1, "step": 5, "metrics": {"loss": 0.5}
    }
    assert saved["aliases"] == ["latest"] and saved["is_best"] is False
    assert saved["sha256"] == second.sha256 and len(second.sha256) == 64
    assert events[2]["name"] == first.name


def test_tied_weights_are_stored_once_and_stay_tied() -> None:
    def tied() -> torch.nn.Module:
        net = torch.nn.Sequential(torch.nn.Embedding(12, 6), torch.nn.Linear(6, 12, bias=False))
        net[1].weight = net[0].weight
        return net

    torch.manual_seed(3)
    source = tied()
    with ut.experiment_tracking("tied", config(async_save=False)) as tracker:
        info = tracker.save_checkpoint(source, epoch=0, step=0)
        restored = tied()
        tracker.load_checkpoint(info, restored)
    assert list(load_file(info.path / "model.safetensors")) == ["0.weight"]
    assert torch.equal(restored[0].weight, source[0].weight)
    assert restored[1].weight is restored[0].weight


@pytest.mark.parametrize("compression, suffix", [("gzip", ".gz"), ("zstd", ".zst")])
def test_compressed_checkpoints_round_trip(compression: str, suffix: str) -> None:
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters())
    train_step(model, optimizer)
    with ut.experiment_tracking("compressed", config(compression=compression)) as tracker:
        info = tracker.save_checkpoint(model, 0, 0, optimizer)
        fresh = make_model(9)
        fresh_optimizer = torch.optim.Adam(fresh.parameters())
        tracker.load_checkpoint("last", fresh, fresh_optimizer)
    assert (info.path / f"model.safetensors{suffix}").exists()
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    assert fresh_optimizer.state_dict()["state"][0]["exp_avg"].equal(optimizer.state_dict()["state"][0]["exp_avg"])


def test_flipped_byte_is_named_skipped_by_load_best_and_fails_verify() -> None:
    model = make_model()
    with ut.experiment_tracking("flip", config(monitor="val_loss", mode="min")) as tracker:
        saved = []
        for epoch, val_loss in enumerate([0.8, 0.2, 0.5]):
            train_step(model, torch.optim.SGD(model.parameters(), lr=0.01))
            saved.append(tracker.save_checkpoint(model, epoch, epoch, val_loss=val_loss))
        best = tracker.get_best_checkpoint()
        assert best is not None and best.name == saved[1].name
        flip_last_tensor_byte(best.path)

        with pytest.warns(RuntimeWarning, match=rf"{best.name}.*tensor '3.bias' fails its BLAKE3"):
            assert tracker.load_best(make_model(1)) == (2, 2)  # the newest that verifies
        with pytest.raises(ut.CheckpointCorruptError, match=r"3\.bias"):
            tracker.load_checkpoint(best, make_model(1))
        with pytest.raises(ut.CheckpointCorruptError):
            tracker.load_checkpoint(best.path, make_model(1))
        run_id = tracker.run_id

    from unitrack.cli.app import app

    result = runner.invoke(app, ["verify", run_id])
    assert result.exit_code == 1
    assert f"DAMAGED  {run_id}/{best.name}" in result.output
    assert "model.safetensors: tensor '3.bias' fails its BLAKE3" in result.output
    assert runner.invoke(app, ["verify", "--json"]).exit_code == 1


def test_verify_passes_an_intact_store() -> None:
    from unitrack.cli.app import app

    with ut.experiment_tracking("intact", config()) as tracker:
        tracker.save_checkpoint(make_model(), 0, 0)
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    assert "1 checkpoint(s) checked, 0 damaged" in result.output


def test_retention_policies_keep_exactly_their_union_across_a_restart() -> None:
    settings = config(monitor="val_loss", mode="min", keep_last=2, keep_best=2, keep_every_n_steps=30)
    scores = [0.9, 0.3, math.nan, 0.5, 0.2, 0.8, 0.7]
    model = make_model()
    with ut.experiment_tracking("retention", settings) as tracker:
        for i, score in enumerate(scores[:5]):
            tracker.save_checkpoint(model, epoch=i, step=i * 10, val_loss=score)
        # kept: last 2 (30, 40), best 2 (40: 0.2, 10: 0.3), every 30 steps (0, 30); NaN (20) is worst
        assert [c.step for c in tracker.list_checkpoints()] == [0, 10, 30, 40]
        run_id = tracker.run_id

    with ut.experiment_tracking("retention", settings, resume=run_id) as resumed:
        assert resumed.resumed_from is not None and resumed.resumed_from.step == 40
        for i, score in enumerate(scores[5:], start=5):
            resumed.save_checkpoint(model, epoch=i, step=i * 10, val_loss=score)
        # last 2 (50, 60), best 2 (40, 10), every 30 (0, 30, 60); 40 is also the resumed-from one
        assert [c.step for c in resumed.list_checkpoints()] == [0, 10, 30, 40, 50, 60]
        assert resumed.get_best_checkpoint().step == 40
    on_disk = sorted(p.name for p in (resumed.run_dir / "checkpoints").iterdir())
    assert on_disk == [c.name for c in resumed.list_checkpoints()]


def test_max_checkpoints_never_deletes_the_best_or_the_last() -> None:
    model = make_model()
    with ut.experiment_tracking("bounded", config(monitor="acc", mode="max", max_checkpoints=2)) as tracker:
        for step, acc in enumerate([0.1, 0.9, 0.3, 0.4, 0.2]):
            tracker.save_checkpoint(model, 0, step, acc=acc)
        assert [c.step for c in tracker.list_checkpoints()] == [1, 4]
        assert tracker.get_best_checkpoint().step == 1


def test_only_files_the_checkpoint_lists_are_deleted() -> None:
    model = make_model()
    with ut.experiment_tracking("foreign", config(keep_last=1)) as tracker:
        first = tracker.save_checkpoint(model, 0, 0)
        tracker.flush()
        (first.path / "notes.txt").write_text("mine")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracker.save_checkpoint(model, 0, 1)
        tracker.flush()
    assert sorted(p.name for p in first.path.iterdir()) == ["notes.txt"]


def test_save_frequency_skips_steps_but_never_a_best_one() -> None:
    model = make_model()
    with ut.experiment_tracking("freq", config(save_frequency=100)) as tracker:
        assert tracker.save_checkpoint(model, 0, 50) is None
        assert tracker.save_checkpoint(model, 0, 100) is not None
        assert tracker.save_checkpoint(model, 0, 130, is_best=True) is not None
        assert [c.step for c in tracker.list_checkpoints()] == [100, 130]


def test_checkpoint_dir_from_the_seed_config_gets_one_folder_per_run(tmp_path: Path) -> None:
    cfg = {"checkpoint_dir": "checkpoints", "max_checkpoints": 10, **config()}
    with ut.experiment_tracking("where", cfg) as tracker:
        info = tracker.save_checkpoint(make_model(), 0, 0)
        tracker.flush()
    assert info.path.parent == tmp_path / "checkpoints" / tracker.run_id
    assert (info.path / "manifest.json").exists()


def _failing_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a disk that fills up in the middle of writing the weights."""
    import errno

    from unitrack.checkpoint import tensorfile

    real = tensorfile.write_all
    written = {"bytes": 0}

    def write(stream, data):  # type: ignore[no-untyped-def]
        written["bytes"] += len(data)
        if written["bytes"] > 1000:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(stream, data)

    monkeypatch.setattr(tensorfile, "write_all", write)


def test_a_full_disk_fails_the_save_clearly_and_keeps_earlier_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model()
    with ut.experiment_tracking("full", config(async_save=False)) as tracker:
        good = tracker.save_checkpoint(model, 0, 0)
        with monkeypatch.context() as patch:
            _failing_write(patch)
            with pytest.raises(ut.CheckpointSaveError, match="No space left on device"):
                tracker.save_checkpoint(torch.nn.Linear(500, 10), 0, 1)
        assert [c.name for c in tracker.list_checkpoints()] == [good.name]
        assert [p.name for p in good.path.parent.iterdir()] == [good.name]  # no temporaries left
        assert tracker.load_checkpoint("last", make_model(1)) == (0, 0)
        assert tracker.save_checkpoint(model, 0, 2) is not None  # training goes on


def test_too_little_free_space_is_refused_before_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    with ut.experiment_tracking("space", config(async_save=False)) as tracker:
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10_000, 9_900, 100))
        with pytest.raises(ut.CheckpointSaveError, match="not enough free space"):
            tracker.save_checkpoint(make_model(), 0, 0)
        monkeypatch.undo()
        assert tracker.list_checkpoints() == []


def test_a_background_failure_surfaces_on_the_next_call_or_as_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model()
    _failing_write(monkeypatch)
    big = torch.nn.Linear(500, 10)
    with ut.experiment_tracking("async-raise", config()) as tracker:
        assert tracker.save_checkpoint(big, 0, 0) is not None  # accepted; written in the background
        with pytest.raises(ut.CheckpointSaveError, match="No space left"):
            tracker.save_checkpoint(model, 0, 1)
    with ut.experiment_tracking("async-warn", config(on_error="warn")) as tracker:
        tracker.save_checkpoint(big, 0, 0)
        with pytest.warns(RuntimeWarning, match="No space left"):
            tracker.flush()
        assert tracker.list_checkpoints() == []


def test_state_that_cannot_be_stored_without_pickle_is_a_clear_error() -> None:
    with ut.experiment_tracking("pickle", config(async_save=False)) as tracker, pytest.raises(ut.CheckpointSaveError, match=r"extra/fn.*no pickles"):
        tracker.save_checkpoint(make_model(), 0, 0, extra={"fn": lambda: 1})


def test_extra_scheduler_scaler_and_rng_round_trip() -> None:
    import random

    model = make_model()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(3):
        train_step(model, optimizer)
        scheduler.step()
    with ut.experiment_tracking("extra", config()) as tracker:
        tracker.save_checkpoint(model, 2, 3, optimizer, scheduler, scaler, extra={"seen": [1, 2], "ratio": math.inf})
        expected = (random.random(), torch.rand(3))
        new_optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        new_scheduler = torch.optim.lr_scheduler.StepLR(new_optimizer, step_size=1, gamma=0.5)
        new_scaler = torch.amp.GradScaler("cpu")
        tracker.load_checkpoint("last", model, new_optimizer, new_scheduler, new_scaler)
        assert random.random() == expected[0]
        assert torch.equal(torch.rand(3), expected[1])
    assert new_scheduler.last_epoch == 3 and new_optimizer.param_groups[0]["lr"] == pytest.approx(0.0125)
    assert new_scaler.get_scale() == 1024.0
    saved = json.loads((tracker.list_checkpoints()[0].path / "state.json").read_text())
    assert saved["extra"]["ratio"] == {"__float__": "inf"} and saved["extra"]["seen"] == [1, 2]


def test_analysis_tools_read_verified_weights_from_a_folder() -> None:
    from unitrack.checkpoint.storage import read_weights

    model = make_model()
    with ut.experiment_tracking("weights", config()) as tracker:
        info = tracker.save_checkpoint(model, 0, 0)
    weights = read_weights(info.path, info.sha256)
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


@pytest.fixture
def tiny_filesystem(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 1 MB file system (tmpfs) where mounting is allowed; skipped elsewhere."""
    import subprocess

    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a size-limited tmpfs here; the failing-write test covers this case")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_really_full_disk_keeps_earlier_checkpoints(tiny_filesystem: Path) -> None:
    import shutil

    model = torch.nn.Linear(2, 2)
    cfg = config(checkpoint_dir=str(tiny_filesystem), async_save=False)
    with ut.experiment_tracking("tmpfs", cfg) as tracker:
        good = tracker.save_checkpoint(model, 0, 0)
        filler = tiny_filesystem / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(tiny_filesystem).free - 8192))  # room for two pages
        with pytest.raises(ut.CheckpointSaveError, match="No space left on device"):
            tracker.save_checkpoint(model, 0, 1)
        assert [c.name for c in tracker.list_checkpoints()] == [good.name]
        assert [p.name for p in good.path.parent.iterdir()] == [good.name]
        assert tracker.load_checkpoint("last", torch.nn.Linear(2, 2)) == (0, 0)
        filler.unlink()
        assert tracker.save_checkpoint(model, 0, 2) is not None


KEY = "11" * 32


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_encrypted_checkpoints_round_trip_and_hold_no_plaintext(
    compression: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNITRACK_CHECKPOINT_KEY", KEY)
    model = make_model()
    with ut.experiment_tracking("secret", config(encrypt=True, compression=compression)) as tracker:
        info = tracker.save_checkpoint(model, 0, 3)
        fresh = make_model(5)
        assert tracker.load_checkpoint("last", fresh) == (0, 3)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
    encrypted = next(info.path.glob("model.safetensors*.enc")).read_bytes()
    assert model[0].weight.detach().numpy().tobytes()[:64] not in encrypted
    assert b"0.weight" not in encrypted  # not even the header is readable


def test_encryption_key_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    with ut.experiment_tracking("nokey", config(encrypt=True, async_save=False)) as tracker:
        with pytest.raises(ut.CheckpointSaveError, match="needs a key in \\$UNITRACK_CHECKPOINT_KEY"):
            tracker.save_checkpoint(make_model(), 0, 0)
        monkeypatch.setenv("UNITRACK_CHECKPOINT_KEY", KEY)
        info = tracker.save_checkpoint(make_model(), 0, 1)
        monkeypatch.setenv("UNITRACK_CHECKPOINT_KEY", "22" * 32)
        with pytest.raises(ut.CheckpointError, match="wrong key"):
            tracker.load_checkpoint(info, make_model())
        monkeypatch.setenv("UNITRACK_CHECKPOINT_KEY", KEY)
        sealed = info.path / "model.safetensors.enc"
        data = bytearray(sealed.read_bytes())
        data[200] ^= 1
        sealed.write_bytes(bytes(data))
        with pytest.raises(ut.CheckpointCorruptError, match=r"model\.safetensors\.enc: encrypted frame 0 fails authentication"):
            tracker.load_checkpoint(info, make_model())


def test_after_flush_an_async_save_is_committed_and_its_buffers_are_the_training_threads_copy() -> None:
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with ut.experiment_tracking("async", config()) as tracker:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        info = tracker.save_checkpoint(model, 0, 0)
        train_step(model, optimizer)  # the model changes while the save may still be writing
        assert tracker.flush()
        assert info.sha256 is not None and (info.path / "manifest.json").exists()
        restored = make_model(4)
        tracker.load_checkpoint(info, restored)
    assert all(torch.equal(restored.state_dict()[k], v) for k, v in before.items())

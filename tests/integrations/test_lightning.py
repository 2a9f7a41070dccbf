"""A real (tiny) Lightning fit logs through UnitrackLogger into one unitrack run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import QUIET, journal, metric_points
from tests.integrations.tensorboard_reader import tensorboard_scalars, with_tensorboard
from unitrack.readers import read_run
from unitrack.store.runs import RunStore

pytest.importorskip("lightning")
import lightning.pytorch as pl

from unitrack.integrations.lightning import UnitrackCheckpoint, UnitrackLogger


class TinyRegressor(pl.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loaders() -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=generator)
    y = x.sum(1, keepdim=True)
    data = TensorDataset(x, y)
    return DataLoader(data, batch_size=8), DataLoader(data, batch_size=16)


def trainer(logger: UnitrackLogger, tmp_path: Path, **options: object) -> pl.Trainer:
    return pl.Trainer(
        logger=logger,
        default_root_dir=tmp_path / "lightning",
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        **options,
    )


def test_fit_logs_metrics_and_hyperparameters_into_one_run(tmp_path: Path, store_dir: Path) -> None:
    logger = UnitrackLogger("lightning-test", with_tensorboard(QUIET, tmp_path / "tb"))
    train, val = loaders()
    trainer(logger, tmp_path, max_epochs=2).fit(TinyRegressor(lr=0.05), train, val)
    run_dir = logger.experiment.run_dir
    logger.finish()

    runs = RunStore(store_dir).run_ids()
    assert runs == [logger.version]
    params = json.loads((run_dir / "params.json").read_text())
    assert params["lr"] == 0.05 and params["hidden"] == 8
    train_points = metric_points(run_dir, "train/loss")
    assert [step for step, _ in train_points] == list(range(8))  # 4 batches x 2 epochs, each step once
    assert len(metric_points(run_dir, "val/loss")) == 2
    view = read_run(logger.version, RunStore(store_dir))
    assert view.record["status"] == "completed"
    assert view.record["metrics"]["val/loss"] < view.metric_history["train/loss"][0]["value"]
    mirrored = tensorboard_scalars(tmp_path / "tb")
    assert [step for step, _ in mirrored["train/loss"]] == list(range(8))
    assert mirrored["train/loss"][-1][1] == pytest.approx(train_points[-1][1], rel=1e-6)


def test_a_failed_fit_marks_the_run_failed(tmp_path: Path, store_dir: Path) -> None:
    class Exploding(TinyRegressor):
        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            if batch_idx == 2:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    logger = UnitrackLogger("lightning-test", QUIET)
    train, _ = loaders()
    with pytest.raises(RuntimeError, match="boom"):
        trainer(logger, tmp_path, max_epochs=1).fit(Exploding(), train)
    record = read_run(logger.version, RunStore(store_dir)).record
    assert record["status"] == "failed"
    assert len(record["metric_summary"]["train/loss"]) and record["metric_summary"]["train/loss"]["count"] == 2


def test_a_tracker_you_pass_stays_yours(tmp_path: Path, store_dir: Path) -> None:
    import unitrack as ut

    with ut.experiment_tracking("mine", QUIET) as tracker:
        logger = UnitrackLogger(tracker=tracker)
        train, _ = loaders()
        trainer(logger, tmp_path, max_epochs=1).fit(TinyRegressor(), train)
        assert not tracker.finished  # Lightning's finalize does not end a run it did not create
        tracker.log_metrics({"after_fit": 1.0})
    assert logger.name == "mine" and logger.version == tracker.run_id


def test_the_checkpoint_callback_names_a_metric_that_exists(tmp_path: Path) -> None:
    logger = UnitrackLogger("lightning-test", QUIET)
    train, val = loaders()
    callback = UnitrackCheckpoint(monitor="val/acc")
    with pytest.raises(KeyError, match="val/acc"):
        trainer(logger, tmp_path, max_epochs=1, callbacks=[callback]).fit(TinyRegressor(), train, val)


def test_checkpoints_go_to_the_registry_and_snapshots_follow_the_schedule(tmp_path: Path, store_dir: Path) -> None:
    logger = UnitrackLogger("lightning-test", QUIET)
    train, val = loaders()
    callback = UnitrackCheckpoint(monitor="val/loss", snapshot_every_n_epochs=2)
    model = TinyRegressor(lr=0.05)
    trainer(logger, tmp_path, max_epochs=4, callbacks=[callback]).fit(model, train, val)
    tracker = logger.experiment

    kept = tracker.list_checkpoints()
    assert [(c.epoch, c.step) for c in kept] == [(0, 4), (1, 8), (2, 12), (3, 16)]
    assert all("val/loss" in c.metrics for c in kept)
    best = tracker.get_best_checkpoint()
    assert best is not None and best.metrics["val/loss"] == min(c.metrics["val/loss"] for c in kept)
    restored = TinyRegressor()
    assert tracker.load_checkpoint("last", restored) == (3, 16)
    for mine, theirs in zip(restored.parameters(), model.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    logger.finish()
    snapshots = [e for e in journal(tracker.run_dir) if e["kind"] == "snapshot"]
    assert [(s["step"], s["tag"]) for s in snapshots] == [(8, "epoch-1"), (16, "epoch-3")]


def test_lightnings_own_checkpoint_files_are_named_in_the_run(tmp_path: Path) -> None:
    logger = UnitrackLogger("lightning-test", QUIET)
    train, val = loaders()
    own = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss", save_last=True)
    pl.Trainer(
        logger=logger, callbacks=[own], max_epochs=1, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", log_every_n_steps=1,
    ).fit(TinyRegressor(), train, val)  # fmt: skip
    logger.finish()
    tags = json.loads((logger.experiment.run_dir / "run.json").read_text())["tags"]
    assert tags["lightning/best_model_path"] == own.best_model_path and Path(own.best_model_path).exists()
    assert tags["lightning/last_model_path"].endswith("last.ckpt")

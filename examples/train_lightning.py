"""PyTorch Lightning with unitrack: one logger and one callback, nothing else changes.

    python examples/train_lightning.py --epochs 3 --config configs/digits.yaml

``UnitrackLogger`` receives everything Lightning logs (``self.log``, ``save_hyperparameters``);
``UnitrackCheckpoint`` puts a checksummed checkpoint into the run's registry every epoch (the
best one by ``val/loss``) and takes a weight snapshot for ``unitrack delta``.
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from unitrack.integrations.lightning import UnitrackCheckpoint, UnitrackLogger


class DigitsClassifier(pl.LightningModule):
    def __init__(self, lr: float = 0.1, hidden: int = 64) -> None:
        super().__init__()
        self.save_hyperparameters()  # recorded by UnitrackLogger as the run's parameters
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.log("val/loss", nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


def loaders(limit: int | None) -> tuple[DataLoader, DataLoader]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)[:limit] / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)[:limit]
    split = int(0.8 * len(y))
    train = DataLoader(TensorDataset(x[:split], y[:split]), batch_size=64, shuffle=True)
    return train, DataLoader(TensorDataset(x[split:], y[split:]), batch_size=256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/local.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--limit", type=int, default=None, help="use only this many images (quick runs)")
    args = parser.parse_args()

    pl.seed_everything(0, verbose=False)
    logger = UnitrackLogger("digits-lightning", args.config)
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        logger=logger,
        callbacks=[UnitrackCheckpoint(monitor="val/loss", snapshot_every_n_epochs=1)],
        enable_checkpointing=False,  # the registry keeps the checkpoints
        enable_progress_bar=False,
        log_every_n_steps=5,
        accelerator="cpu",
    )
    trainer.fit(DigitsClassifier(lr=args.lr), *loaders(args.limit))
    tracker = logger.experiment
    best = tracker.get_best_checkpoint()
    logger.finish()
    print(f"best checkpoint: epoch {best.epoch if best else None}; run {tracker.run_id} in {tracker.run_dir}")


if __name__ == "__main__":
    main()

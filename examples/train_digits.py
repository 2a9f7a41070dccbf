"""The seed-002 workflow: a small CNN on scikit-learn's digits (no download), fully tracked.

    python examples/train_digits.py --config configs/digits.yaml --lr 0.05 --epochs 5
    python examples/train_digits.py --config configs/digits.yaml --lr 0.05 --epochs 8 --resume last
    python examples/train_digits.py --config configs/digits-all-backends.yaml    # + MLflow, TensorBoard, W&B

One script, every feature: hyperparameters, the model graph and set-up (``watch``), gradient
statistics and weight snapshots every epoch, the system monitor, checkpoints with a best one
and ``--resume`` (the run goes on from its last intact checkpoint), and plots at finish. The
backends are chosen by the config file alone; the code does not change.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

import unitrack as ut


def scaled_relu(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The activation the model uses; `unitrack compare` shows it when it changes."""
    return F.relu(x) * scale


class DigitsCNN(nn.Module):
    """Two small conv layers and a classifier for 8x8 digits."""

    def __init__(self, channels: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(channels * 2 * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = scaled_relu(self.conv1(x))
        x = F.max_pool2d(scaled_relu(self.conv2(x)), 2)
        x = scaled_relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def digits_loaders(batch_size: int, seed: int, limit: int | None = None) -> tuple[DataLoader, DataLoader]:
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:limit]
    split = int(0.8 * len(order))
    train = TensorDataset(images[order[:split]], labels[order[:split]])
    val = TensorDataset(images[order[split:]], labels[order[split:]])
    shuffle = torch.Generator().manual_seed(seed)
    return DataLoader(train, batch_size=batch_size, shuffle=True, generator=shuffle), DataLoader(val, batch_size=256)


def evaluate(model: nn.Module, loader: DataLoader, loss_fn: nn.Module) -> tuple[float, float]:
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            logits = model(images)
            total_loss += loss_fn(logits, labels).item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            count += len(labels)
    model.train()
    return total_loss / count, correct / count


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.yaml", help="a unitrack YAML config: it picks the backends")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=5, help="the last epoch to reach (also when resuming)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="digits-cnn", help="the experiment name")
    parser.add_argument("--resume", default=None, help="a run id, or 'last': continue that run from its last checkpoint")
    parser.add_argument("--limit", type=int, default=None, help="use only this many images (quick runs)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    train_loader, val_loader = digits_loaders(args.batch_size, args.seed, args.limit)
    model = DigitsCNN(hidden=args.hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()

    with ut.ExperimentTracker(args.name, args.config, resume=args.resume) as tracker:
        first_epoch, step, best_val_loss = 0, 0, math.inf
        if tracker.resumed_from is not None:  # model, optimizer, scheduler and RNG state as they were saved
            epoch, step = tracker.load_checkpoint(tracker.resumed_from, model, optimizer, scheduler)
            first_epoch = epoch + 1
            best = tracker.get_best_checkpoint()
            best_val_loss = best.metrics.get("val_loss", math.inf) if best else math.inf
            print(f"resuming run {tracker.run_id} after epoch {epoch} (step {step})")
        else:  # a resumed run keeps the hyperparameters it started with
            tracker.log_hyperparameters({k: v for k, v in vars(args).items() if k not in ("config", "resume")})
        example = next(iter(train_loader))[0][:1]
        tracker.watch(
            model, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn, dataloader=train_loader,
            example_input=example, snapshot_every="epoch", gradients=True, log_every=10,
        )  # fmt: skip
        for epoch in range(first_epoch, args.epochs):
            started, train_loss = time.perf_counter(), 0.0
            for images, labels in train_loader:
                loss = loss_fn(model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                tracker.log_metrics({"train/loss": loss.detach(), "lr": scheduler.get_last_lr()[0]}, step=step)
                train_loss += loss.item()
                step += 1
            scheduler.step()
            val_loss, val_acc = evaluate(model, val_loader, loss_fn)
            tracker.log_metrics(
                {"val/loss": val_loss, "val/acc": val_acc, "epoch": epoch, "epoch_time_s": time.perf_counter() - started},
                step=step,
            )
            tracker.save_checkpoint(
                model, epoch=epoch, step=step, optimizer=optimizer, scheduler=scheduler,
                is_best=val_loss < best_val_loss, train_loss=train_loss / len(train_loader),
                val_loss=val_loss, val_acc=val_acc,
            )  # fmt: skip
            best_val_loss = min(best_val_loss, val_loss)
            print(f"epoch {epoch}: val_loss={val_loss:.4f} val_acc={val_acc:.4f}")
        best = tracker.get_best_checkpoint()
        if best is not None:
            print(f"best checkpoint: epoch {best.epoch}, val_loss={best.metrics['val_loss']:.4f} ({best.path})")
    print(f"run {tracker.run_id} in {tracker.run_dir}")


if __name__ == "__main__":
    main()

"""Train a small CNN on scikit-learn's digits (no download) and track it with unitrack.

    python examples/train_digits.py --config configs/local.yaml --lr 0.05 --epochs 5

Switch backends with another config (configs/all-backends.yaml) without touching this code.
"""

from __future__ import annotations

import argparse
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


def digits_loaders(batch_size: int, seed: int) -> tuple[DataLoader, DataLoader]:
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    split = int(0.8 * len(labels))
    train = TensorDataset(images[order[:split]], labels[order[:split]])
    val = TensorDataset(images[order[split:]], labels[order[split:]])
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator),
        DataLoader(val, batch_size=256),
    )


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a unitrack YAML config (default: local store only)")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="digits-cnn")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    train_loader, val_loader = digits_loaders(args.batch_size, args.seed)
    model = DigitsCNN(hidden=args.hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()

    with ut.experiment_tracking(args.name, args.config) as tracker:
        tracker.log_hyperparameters(args)
        tracker.watch(model, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn, dataloader=train_loader)
        step = 0
        for epoch in range(args.epochs):
            started = time.perf_counter()
            for images, labels in train_loader:
                loss = loss_fn(model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                tracker.log_metrics({"train/loss": loss.detach(), "lr": scheduler.get_last_lr()[0]}, step=step)
                step += 1
            scheduler.step()
            val_loss, val_acc = evaluate(model, val_loader, loss_fn)
            tracker.log_metrics(
                {"val/loss": val_loss, "val/acc": val_acc, "epoch": epoch, "epoch_time_s": time.perf_counter() - started},
                step=step,
            )
            print(f"epoch {epoch}: val_loss={val_loss:.4f} val_acc={val_acc:.4f}")
    print(f"run {tracker.run_id} in {tracker.run_dir}")


if __name__ == "__main__":
    main()

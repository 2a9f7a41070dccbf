"""Watch how each layer of a small MLP moves while it learns scikit-learn's digits (no download).

    python examples/weight_changes.py --epochs 12
    unitrack delta latest                 # which layers moved most, first snapshot to last
    unitrack plot latest --out plots/     # the pictures of docs/weights.md

Snapshots are taken every epoch, gradient norms and update ratios every 5 steps; with
``monitoring.create_plots`` the plots are also stored with the run.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits

import unitrack as ut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--plots", action="store_true", help="make the plots at finish (monitoring.create_plots)")
    args = parser.parse_args()

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    train_x, train_y, val_x, val_y = x[:1400], y[:1400], x[1400:], y[1400:]
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    batches = [(train_x[i : i + 100], train_y[i : i + 100]) for i in range(0, len(train_x), 100)]
    loss_fn = torch.nn.CrossEntropyLoss()
    config = {"monitoring": {"create_plots": args.plots}}
    with ut.experiment_tracking("weight-changes", config) as tracker:
        tracker.watch(model, optimizer, dataloader=batches, snapshot_every="epoch", gradients=True, log_every=5)
        step = 0
        for _ in range(args.epochs):
            for images, labels in batches:
                optimizer.zero_grad()
                loss = loss_fn(model(images), labels)
                loss.backward()
                optimizer.step()
                step += 1
                tracker.log_metrics({"train/loss": loss.item()}, step=step)
            with torch.no_grad():
                val_logits, train_logits = model(val_x), model(train_x)
            tracker.log_metrics(
                {
                    "val/loss": loss_fn(val_logits, val_y).item(),
                    "train/acc": (train_logits.argmax(1) == train_y).float().mean().item(),
                    "val/acc": (val_logits.argmax(1) == val_y).float().mean().item(),
                },
                step=step,
            )
    print(f"run {tracker.run_id}: unitrack delta {tracker.run_id}; unitrack plot {tracker.run_id} --out plots/")


if __name__ == "__main__":
    main()

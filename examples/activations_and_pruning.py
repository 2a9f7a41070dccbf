"""Activations, pruning and quantization on scikit-learn's digits (no download): the rest of the weight story.

    python examples/activations_and_pruning.py --out plots/
    unitrack delta latest                 # sparsity 0% → 50% for the pruned layer
    unitrack plot latest --out plots/     # sparsity.png, activations.png beside the weight plots

An MLP trains for a few epochs with activation statistics every 10 steps; one hidden layer is
started with a strongly negative bias on 24 of its 32 units so that they are dead (zero_fraction near
1 in ``activations/3/...``), half of another layer's weights are pruned (L1, unstructured) halfway
through, and the trained model is dynamically quantized to int8 and snapshotted once more.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.utils import prune

import unitrack as ut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a unitrack YAML config: it picks the backends")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", default=None, help="write the run's plots here")
    args = parser.parse_args()

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        model[2].bias[:24].fill_(-10.0)  # 24 of this layer's 32 units start (and stay) dead
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    batches = len(y) // 64

    with ut.ExperimentTracker("digits-compression", args.config) as tracker:
        tracker.watch(model, optimizer=optimizer, snapshot_every=batches, activations_every=10)
        step = 0
        for epoch in range(args.epochs):
            if epoch == args.epochs // 2:
                prune.l1_unstructured(model[0], "weight", amount=0.5)  # half of the first layer
            for batch in torch.randperm(len(y)).split(64):
                loss = loss_fn(model(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                tracker.log_metrics({"train/loss": loss.detach()}, step=step)
                step += 1
        prune.remove(model[0], "weight")  # make the pruning permanent before quantizing
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        tracker.snapshot_weights(quantized, tag="int8")
    print(f"run {tracker.run_id}: try `unitrack delta {tracker.run_id}` and `unitrack plot {tracker.run_id} --out plots/`")
    if args.out:
        from unitrack.weights.plots import plot_run

        for path in plot_run(tracker.store, tracker.run_id, __import__("pathlib").Path(args.out)):
            print(path)


if __name__ == "__main__":
    main()

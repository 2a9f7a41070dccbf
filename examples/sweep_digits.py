"""A small Optuna sweep on scikit-learn's digits (no download): one unitrack run per trial, with pruning.

    python examples/sweep_digits.py --trials 12
    unitrack ls --group-by study            # the trials of each study, the best one named
    unitrack explain --sweep digits-sweep   # which hyperparameter mattered (where available)

Each trial trains a small MLP for a few epochs and logs its validation loss per epoch; the
monitored ``val/loss`` is reported to Optuna as it is logged, so the MedianPruner stops poor
trials early and their runs end ``pruned``. The study (direction, sampler, pruner, best trial)
is kept in the store beside the runs.
"""

from __future__ import annotations

import argparse

import optuna
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

from unitrack.integrations.optuna import UnitrackOptunaCallback


def digits_tensors(seed: int) -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    split = int(0.8 * len(y))
    return x[order[:split]], y[order[:split]], x[order[split:]], y[order[split:]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a unitrack YAML config: it picks the backends")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=1, help="trials run side by side in threads")
    parser.add_argument("--study", default="digits-sweep")
    parser.add_argument("--storage", default=None, help="an Optuna storage URL (e.g. sqlite:///sweep.db) to share")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    x_train, y_train, x_val, y_val = digits_tensors(seed=0)
    callback = UnitrackOptunaCallback(args.study, args.config, monitor="val/loss")

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        hidden = trial.suggest_int("hidden", 8, 64, log=True)
        torch.manual_seed(trial.number)
        model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        loss_fn = nn.CrossEntropyLoss()
        with callback.track(trial) as tracker:
            val_loss = float("inf")
            for epoch in range(args.epochs):
                for batch in torch.randperm(len(y_train)).split(64):
                    loss = loss_fn(model(x_train[batch]), y_train[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                with torch.no_grad():
                    logits = model(x_val)
                    val_loss = loss_fn(logits, y_val).item()
                    val_acc = (logits.argmax(1) == y_val).float().mean().item()
                tracker.log_metrics({"val/loss": val_loss, "val/acc": val_acc, "train/loss": loss.item()}, step=epoch)
            return val_loss

    study = optuna.create_study(
        study_name=args.study, storage=args.storage, load_if_exists=True, direction="minimize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    )  # fmt: skip
    study.optimize(objective, n_trials=args.trials, n_jobs=args.jobs, callbacks=[callback])
    states = [t.state.name.lower() for t in study.trials]
    print(f"{len(states)} trials: {states.count('complete')} complete, {states.count('pruned')} pruned")
    print(f"best trial {study.best_trial.number}: val/loss={study.best_value:.4f} params={study.best_params}")


if __name__ == "__main__":
    main()

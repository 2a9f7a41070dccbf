"""Real small trainings on scikit-learn's digits, one factor changed at a time, for ``explain`` tests.

Each run is a tiny MLP trained for a few epochs and logged per epoch (``train_loss``, ``val_loss``,
``val_acc``) through a real tracker, with bookkeeping params (paths, intervals, workers) beside
the ones that matter. ``CAUSES`` maps a cause to the params it changes; ``BOOKKEEPING`` holds two
sets of bookkeeping values, the second used when a pair also changes them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

BASE: dict[str, Any] = {
    "lr": 0.05, "batch_size": 64, "hidden": 32, "optimizer": "sgd", "weight_decay": 0.0, "dropout": 0.0,
    "label_noise": 0.0, "train_fraction": 1.0, "lr_schedule": "constant", "lr_step_epochs": 3,
    "init_scale": 1.0, "epochs": 12, "seed": 0,
}  # fmt: skip

BOOKKEEPING: tuple[dict[str, Any], dict[str, Any]] = (
    {"out_dir": "runs/base", "log_every": 10, "num_workers": 0, "report": "/tmp/ckpt/a.pt", "verbose": 1},
    {"out_dir": "runs/other", "log_every": 50, "num_workers": 4, "report": "/tmp/ckpt/b.pt", "verbose": 2},
)

CAUSES: dict[str, dict[str, Any]] = {
    "lr_up": {"lr": 1.0},
    "lr_down": {"lr": 0.002},
    "batch_size": {"batch_size": 512},
    "width": {"hidden": 3},
    "optimizer": {"optimizer": "adam"},
    "weight_decay": {"weight_decay": 0.05},
    "dropout": {"dropout": 0.7},
    "label_noise": {"label_noise": 0.6},
    "train_fraction": {"train_fraction": 0.08},
    "lr_schedule": {"lr_schedule": "step"},
    "init_scale": {"init_scale": 0.02},
    "epochs": {"epochs": 4},
}


@lru_cache(maxsize=1)
def _data() -> tuple[Any, Any, Any, Any]:
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(12345).permutation(len(digits.target))  # one fixed split for every run
    x = (digits.data[order] / 16.0).astype("float32")
    y = digits.target[order].astype("int64")
    return x[:1200], y[:1200], x[1200:], y[1200:]


def train(params: dict[str, Any], config: dict[str, Any]) -> str:
    """Train once with ``params`` (BASE plus bookkeeping); return the run id."""
    import numpy as np
    import torch
    from torch import nn

    import unitrack as ut

    torch.set_num_threads(1)
    x_train, y_train, x_val, y_val = _data()
    rng = np.random.default_rng(params["seed"])
    torch.manual_seed(params["seed"])
    n = int(len(y_train) * params["train_fraction"])
    x_train, y_train = x_train[:n], y_train[:n].copy()
    noisy = rng.random(n) < params["label_noise"]
    y_train[noisy] = rng.integers(0, 10, int(noisy.sum()))
    model = nn.Sequential(nn.Linear(64, params["hidden"]), nn.ReLU(), nn.Dropout(params["dropout"]), nn.Linear(params["hidden"], 10))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(params["init_scale"])
    if params["optimizer"] == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9, weight_decay=params["weight_decay"])
    gamma = 0.1 if params["lr_schedule"] == "step" else 1.0
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, params["lr_step_epochs"], gamma)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val)
    loss_fn = nn.CrossEntropyLoss()
    with ut.experiment_tracking("digits", config) as tracker:
        tracker.log_hyperparameters(params)
        for epoch in range(params["epochs"]):
            model.train()
            total, batches = 0.0, 0
            perm = torch.from_numpy(rng.permutation(n))
            xt, yt = xt[perm], yt[perm]
            for start in range(0, n, params["batch_size"]):
                batch = slice(start, start + params["batch_size"])
                optimizer.zero_grad()
                loss = loss_fn(model(xt[batch]), yt[batch])
                loss.backward()
                optimizer.step()
                total, batches = total + loss.item(), batches + 1
            scheduler.step()
            model.eval()
            with torch.no_grad():
                out = model(xv)
                val_loss = float(loss_fn(out, yv))
                val_acc = float((out.argmax(1) == yv).float().mean())
            tracker.log_metrics({"train_loss": total / batches, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
    return tracker.run_id

"""Weight snapshots without PyTorch: a JAX-style pytree of NumPy arrays, trained by hand.

    python examples/snapshot_pytree.py --steps 200
    unitrack delta latest          # how each "layer" of the pytree moved

``snapshot_weights`` takes any nested mapping of arrays (a JAX/Flax params pytree works the same
way: ``jax.device_get(params)`` gives NumPy leaves). Unchanged leaves are stored only once.
"""

from __future__ import annotations

import argparse

import numpy as np

import unitrack as ut


def forward(params: dict[str, dict[str, np.ndarray]], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hidden = np.tanh(x @ params["dense1"]["kernel"] + params["dense1"]["bias"])
    return hidden @ params["dense2"]["kernel"] + params["dense2"]["bias"], hidden


def gradients(params: dict[str, dict[str, np.ndarray]], x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    out, hidden = forward(params, x)
    error = (out - y) / len(x)
    d_hidden = (error @ params["dense2"]["kernel"].T) * (1 - hidden**2)
    grads = {
        "dense1": {"kernel": x.T @ d_hidden, "bias": d_hidden.sum(0)},
        "dense2": {"kernel": hidden.T @ error, "bias": error.sum(0)},
    }
    return float(((out - y) ** 2).mean()), grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/local.yaml")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--snapshot-every", type=int, default=50)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = np.sin(x.sum(1, keepdims=True)).astype(np.float32)
    params = {
        "dense1": {"kernel": rng.normal(scale=0.5, size=(4, 16)).astype(np.float32), "bias": np.zeros(16, np.float32)},
        "dense2": {"kernel": rng.normal(scale=0.5, size=(16, 1)).astype(np.float32), "bias": np.zeros(1, np.float32)},
    }
    with ut.experiment_tracking("pytree-regression", args.config) as tracker:
        tracker.log_hyperparameters(vars(args))
        tracker.snapshot_weights(params, step=0, tag="init")
        for step in range(1, args.steps + 1):
            loss, grads = gradients(params, x, y)
            params = {layer: {k: v - args.lr * grads[layer][k] for k, v in leaves.items()} for layer, leaves in params.items()}
            tracker.log_metrics({"train/loss": loss}, step=step)
            if step % args.snapshot_every == 0:
                tracker.snapshot_weights(params, step=step)
    print(f"final loss {loss:.4f}; run {tracker.run_id}: try `unitrack delta {tracker.run_id}`")


if __name__ == "__main__":
    main()

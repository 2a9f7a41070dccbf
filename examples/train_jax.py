"""Weight snapshots of a JAX model: a small MLP on scikit-learn's digits, trained with jax.grad.

    pip install jax                # the CPU build is enough
    python examples/train_jax.py --epochs 5
    unitrack delta latest          # how each leaf of the params pytree moved, largest first
    unitrack plot latest --out plots

``snapshot_weights`` takes the params pytree as it is (nested dicts of ``jax.Array``; a Flax
``FrozenDict`` works the same): leaves are copied to the host, hashed, and stored once, so a leaf
that did not change between snapshots costs nothing.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits

import unitrack as ut


def init(key: jax.Array, sizes: list[int]) -> dict[str, dict[str, jax.Array]]:
    keys = jax.random.split(key, len(sizes) - 1)
    return {
        f"dense{i}": {"kernel": jax.random.normal(k, (m, n)) * np.sqrt(2.0 / m), "bias": jnp.zeros(n)}
        for i, (k, m, n) in enumerate(zip(keys, sizes[:-1], sizes[1:]))
    }


def logits(params: dict[str, dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    *hidden, last = params.values()
    for layer in hidden:
        x = jax.nn.relu(x @ layer["kernel"] + layer["bias"])
    return x @ last["kernel"] + last["bias"]


def loss_fn(params: dict[str, dict[str, jax.Array]], x: jax.Array, y: jax.Array) -> jax.Array:
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits(params, x)), y[:, None], axis=1))


@jax.jit
def train_step(params: dict, x: jax.Array, y: jax.Array, lr: float) -> tuple[dict, jax.Array]:
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    return jax.tree_util.tree_map(lambda w, g: w - lr * g, params, grads), loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/local.yaml")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    digits = load_digits()
    x = jnp.asarray(digits.data / 16.0, dtype=jnp.float32)
    y = jnp.asarray(digits.target)
    split = int(0.8 * len(x))
    params = init(jax.random.PRNGKey(0), [64, 64, 10])
    step = 0
    with ut.experiment_tracking("digits-jax", args.config) as tracker:
        tracker.log_hyperparameters(vars(args) | {"framework": "jax", "jax_version": jax.__version__})
        tracker.snapshot_weights(params, step=0, tag="init")
        for epoch in range(args.epochs):
            for start in range(0, split, args.batch_size):
                params, loss = train_step(params, x[start : start + args.batch_size], y[start : start + args.batch_size], args.lr)
                step += 1
                tracker.log_metrics({"train/loss": loss}, step=step)
            accuracy = float(jnp.mean(jnp.argmax(logits(params, x[split:]), axis=1) == y[split:]))
            tracker.log_metrics({"val/acc": accuracy, "epoch": epoch}, step=step)
            tracker.snapshot_weights(params, step=step, tag=f"epoch-{epoch}")
            print(f"epoch {epoch}: val_acc={accuracy:.4f}")
    print(f"run {tracker.run_id}: try `unitrack delta {tracker.run_id}@init {tracker.run_id}`")


if __name__ == "__main__":
    main()

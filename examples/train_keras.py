"""Keras 3 on the torch backend with unitrack: one callback in ``fit``.

    python examples/train_keras.py --epochs 3

Importing ``unitrack.integrations.keras`` before Keras selects the torch backend
(``KERAS_BACKEND=torch``) unless you chose one. The callback logs per-batch and per-epoch
metrics, the fit settings and the optimizer as parameters, and a weight snapshot every epoch.
"""

from __future__ import annotations

import argparse

from unitrack.integrations.keras import UnitrackKerasCallback  # first: it picks Keras' torch backend

import keras  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/local.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--limit", type=int, default=None, help="use only this many images (quick runs)")
    args = parser.parse_args()

    digits = load_digits()
    x, y = digits.data[: args.limit].astype("float32") / 16.0, digits.target[: args.limit]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=args.lr, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callback = UnitrackKerasCallback("digits-keras", args.config, snapshot_every_n_epochs=1, log_every_n_batches=5)
    model.fit(x, y, epochs=args.epochs, batch_size=64, validation_split=0.2, verbose=0, callbacks=[callback])
    print(f"run {callback.tracker.run_id} in {callback.tracker.run_dir}")


if __name__ == "__main__":
    main()

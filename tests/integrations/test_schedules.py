"""A callback schedule that cannot be followed is refused up front, naming the setting."""

from __future__ import annotations

import pytest


def test_lightning_and_keras_callbacks_name_a_schedule_below_one(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("lightning")
    from unitrack.integrations.lightning import UnitrackCheckpoint

    with pytest.raises(ValueError, match=r"snapshot_every_n_epochs must be at least 1 .* not 0"):
        UnitrackCheckpoint(monitor="val/loss", snapshot_every_n_epochs=0)
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    from unitrack.integrations.keras import UnitrackKerasCallback

    with pytest.raises(ValueError, match=r"log_every_n_batches must be at least 1 .* not -2"):
        UnitrackKerasCallback(log_every_n_batches=-2)
    UnitrackKerasCallback(log_every_n_batches=None)  # None turns it off

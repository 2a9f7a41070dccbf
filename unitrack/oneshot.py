"""``unitrack.log_all``: a registry entry in one call, for scripts that only log after training.

A local model registry's one-call usage works as written: ``unitrack.log_all(model, tags=tags, result=acc,
optimizer=optimizer)``. The run records the model (architecture, parameter counts, the source of
its class and the functions it calls), the optimizer's settings, the tags and the result, and
is then finished, so ``unitrack ls --tag`` / ``--filter "metrics.result >= 0.9"`` find it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unitrack.config import ConfigSource

RESULT_KEY = "result"


def log_all(
    model: Any,
    tags: Mapping[str, Any] | None = None,
    result: float | Mapping[str, float] | None = None,
    optimizer: Any = None,
    *,
    name: str | None = None,
    config: ConfigSource = None,
    params: Any = None,
    scheduler: Any = None,
    loss_fn: Any = None,
    dataloader: Any = None,
) -> str:
    """Record ``model`` and its set-up as one finished run; return its run id.

    ``result`` is a number (stored as the metric ``result``) or a mapping of metric names to
    numbers; ``tags`` values are stored as strings; ``name`` defaults to the model's class name.
    """
    from unitrack.tracker import ExperimentTracker

    tracker = ExperimentTracker(name or type(model).__name__, config, tags=dict(tags or {}))
    with tracker:
        if params is not None:
            tracker.log_hyperparameters(params)
        tracker.watch(model, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn, dataloader=dataloader)
        if result is not None:
            metrics = dict(result) if isinstance(result, Mapping) else {RESULT_KEY: result}
            tracker.log_metrics(metrics, step=0)
    return tracker.run_id

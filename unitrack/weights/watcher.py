"""``watch(..., snapshot_every=, gradients=)``: snapshots and gradient statistics on a schedule.

The watcher hooks the optimizer's step (``register_step_pre_hook`` / ``register_step_post_hook``),
so it costs nothing when off and a counter increment on steps it does not sample. On a sampled
step it reads each parameter's gradient norm before the step and the norm of the actual update
after it (the weights' difference across ``optimizer.step()``, so the learning rate, momentum and
weight decay are all in it): the update-to-weight ratio ‖ΔW‖/‖W‖, healthy around 1e-3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unitrack.events import HISTOGRAM, HistogramData, RecordSink
from unitrack.weights.snapshots import SnapshotWriter
from unitrack.weights.stats import histogram

GRAD_NORM_PREFIX = "grad_norm/"
UPDATE_RATIO_PREFIX = "update_ratio/"
GRADIENT_HISTOGRAM_PREFIX = "grad/"  # a gradient's histogram is named apart from its weight's

MetricSink = Callable[[dict[str, float], int], None]


def snapshot_interval(snapshot_every: str | int | None, dataloader: Any) -> int | None:
    """Optimizer steps between two snapshots: N, or one epoch (the data loader's length)."""
    if snapshot_every is None:
        return None
    if snapshot_every == "epoch":
        if dataloader is None or not hasattr(dataloader, "__len__"):
            raise ValueError("watch(snapshot_every='epoch') needs a dataloader with a length; or give a number of steps")
        return max(1, len(dataloader))
    if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) or snapshot_every < 1:
        raise ValueError(f"snapshot_every must be 'epoch' or a positive number of steps, not {snapshot_every!r}")
    return snapshot_every


class WeightWatcher:
    """Optimizer hooks that take snapshots every ``interval`` steps and sample gradients every ``log_every``."""

    def __init__(
        self,
        model: Any,
        optimizer: Any,
        writer: SnapshotWriter,
        *,
        interval: int | None,
        gradients: bool,
        log_every: int,
        log_metrics: MetricSink,
        emit: RecordSink,
        histograms: bool,
    ) -> None:
        if optimizer is None or not hasattr(optimizer, "register_step_post_hook"):
            raise ValueError("watch(snapshot_every=/gradients=True) hooks the optimizer step: pass optimizer=")
        if log_every < 1:
            raise ValueError(f"log_every must be a positive number of steps, not {log_every!r}")
        self.model = model
        self.writer = writer
        self.interval = interval
        self.gradients = gradients
        self.log_every = log_every
        self.updates = 0
        self.last_snapshot_step: int | None = None
        self._log_metrics = log_metrics
        self._emit = emit
        self._histograms = histograms
        self._names = {id(p): name for name, p in model.named_parameters()}
        self._before: list[Any] | None = None
        self._sampled: list[tuple[str, Any]] = []
        self._handles = [optimizer.register_step_pre_hook(self._pre_step), optimizer.register_step_post_hook(self._post_step)]
        if interval is not None:
            self.snapshot()  # the initialisation: the reference of "distance from the start"

    def snapshot(self, tag: str | None = None) -> None:
        self.writer.take(self.model, self.updates, tag)
        self.last_snapshot_step = self.updates

    def close(self) -> None:
        """Remove the hooks; take a last snapshot of the final weights if the schedule missed them."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self.interval is not None and self.last_snapshot_step != self.updates:
            self.snapshot("final")

    def _pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self.gradients or (self.updates + 1) % self.log_every:
            return
        import torch

        params = [(self._names.get(id(p), f"param{i}"), p) for group in optimizer.param_groups for i, p in enumerate(group["params"]) if p.grad is not None]
        if not params:
            return
        with torch.no_grad():
            grads = [p.grad.detach() for _, p in params]
            norms = torch._foreach_norm(grads)
            metrics = {GRAD_NORM_PREFIX + name: float(n) for (name, _), n in zip(params, norms, strict=True)}
            self._log_metrics(metrics, self.updates + 1)
            if self._histograms:
                values = {
                    GRADIENT_HISTOGRAM_PREFIX + name: h
                    for (name, _), g in zip(params, grads, strict=True)
                    if (h := histogram(g.float().cpu().numpy()))
                }
                self._emit(HISTOGRAM, HistogramData(step=self.updates + 1, values=values))
            self._sampled = params
            self._before = [p.detach().clone() for _, p in params]

    def _post_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.updates += 1
        if self._before is not None:
            self._log_update_ratios()
        if self.interval is not None and self.updates % self.interval == 0:
            self.snapshot()

    def _log_update_ratios(self) -> None:
        import torch

        with torch.no_grad():
            after = [p.detach() for _, p in self._sampled]
            assert self._before is not None, "_log_update_ratios follows a step that kept the weights"
            update_norms = torch._foreach_norm(torch._foreach_sub(after, self._before))
            weight_norms = torch._foreach_norm(after)
        metrics = {
            UPDATE_RATIO_PREFIX + name: float(u) / max(float(w), 1e-12)
            for (name, _), u, w in zip(self._sampled, update_norms, weight_norms, strict=True)
        }
        self._log_metrics(metrics, self.updates)
        self._before = None
        self._sampled = []

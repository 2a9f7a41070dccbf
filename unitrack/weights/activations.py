"""``watch(model, activations_every=N)``: what each module's output looks like, every N steps.

Per watched module and sampled step: mean, std, min, max, ``zero_fraction`` (dead units after a
ReLU-like layer) and, for bounded activations (tanh, sigmoid, ...), ``saturation_fraction`` (near
the bounds, where the gradient vanishes); optionally a histogram. Logged as the metrics
``activations/<module>/<stat>`` and ``histogram`` events named ``activations/<module>``.

Cost: between samples only the root module's forward pre-hook runs (a counter). On a sampled
step the module hooks are added for that one forward pass; each computes its statistics on the
module's device, in float32, without touching autograd, and the root's post-hook moves them all to
the host in one transfer. Nothing changes what the model computes, so training gives the same
losses with and without it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

from unitrack.events import HISTOGRAM, HistogramData, RecordSink

PREFIX = "activations/"
STATS = ("mean", "std", "min", "max", "zero_fraction")
SATURATION = "saturation_fraction"
HISTOGRAM_BINS = 30
_NEAR = 0.01  # within 1 % of a bound counts as saturated

MetricSink = Callable[[dict[str, float], int], None]
ModuleSelector = str | type | Sequence[str | type] | None


def _bounds(module: Any) -> tuple[float, float] | None:
    """The output range of a bounded activation module (None for unbounded ones)."""
    from torch import nn

    if isinstance(module, (nn.Tanh, nn.Softsign)):
        return (-1.0, 1.0)
    if isinstance(module, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
        return (float(module.min_val), float(module.max_val))
    if isinstance(module, (nn.Sigmoid, nn.Hardsigmoid)):
        return (0.0, 1.0)
    return None


def default_modules(model: Any) -> list[tuple[str, Any]]:
    """Every module with parameters of its own, and every activation layer (``torch.nn`` activations)."""
    from torch.nn.modules import activation

    chosen = []
    for name, module in model.named_modules():
        if not name:
            continue  # the model itself: its output is the loss's input, not a layer's
        own_params = next(module.parameters(recurse=False), None) is not None
        if own_params or type(module).__module__ == activation.__name__:
            chosen.append((name, module))
    return chosen


def select_modules(model: Any, selector: ModuleSelector) -> list[tuple[str, Any]]:
    """The modules to watch: the defaults, or those matching module types and/or name globs."""
    if selector is None:
        return default_modules(model)
    wanted = [selector] if isinstance(selector, (str, type)) else list(selector)
    types = tuple(s for s in wanted if isinstance(s, type))
    patterns = [s for s in wanted if isinstance(s, str)]
    bad = [s for s in wanted if not isinstance(s, (str, type))]
    if bad:
        raise ValueError(f"activations_modules takes module types or name patterns, not {bad[0]!r}")
    chosen = [
        (name, module)
        for name, module in model.named_modules()
        if name and ((types and isinstance(module, types)) or any(fnmatch.fnmatchcase(name, p) for p in patterns))
    ]
    if not chosen:
        raise ValueError(f"activations_modules {selector!r} matches no module of the {type(model).__name__}")
    return chosen


class ActivationWatcher:
    """Forward hooks on ``model`` that sample its modules' outputs every ``every`` training forward passes.

    The step of a sample is the number of training forward passes before it (the optimizer step
    in a usual loop); forward passes in eval mode are neither counted nor sampled.
    """

    def __init__(
        self,
        model: Any,
        every: int,
        log_metrics: MetricSink,
        emit: RecordSink,
        *,
        modules: ModuleSelector = None,
        histograms: bool = False,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"activations_every must be a positive number of steps, not {every!r}")
        self.every = every
        self.steps = 0
        self.histograms = histograms
        self._log_metrics = log_metrics
        self._emit = emit
        self._watched = [(name, module, _bounds(module)) for name, module in select_modules(model, modules)]
        self._pending: list[tuple[str, Any, bool]] = []  # name, stats tensor, whether it holds a histogram
        self._sample_handles: list[Any] = []
        self._step_of_sample = 0
        self._model = model
        self._handles = [model.register_forward_pre_hook(self._before), model.register_forward_hook(self._after)]

    def __deepcopy__(self, memo: dict[int, Any]) -> ActivationWatcher:
        """A deep copy of the watched model (an EMA copy, ``quantize_dynamic``) keeps the hooks, not a
        second watcher: they ignore any model but the one watched."""
        return self

    @property
    def module_names(self) -> list[str]:
        return [name for name, _, _ in self._watched]

    def close(self) -> None:
        for handle in [*self._handles, *self._sample_handles]:
            handle.remove()
        self._handles, self._sample_handles, self._pending = [], [], []

    def _before(self, model: Any, args: Any) -> None:
        if not model.training or model is not self._model:
            return
        step = self.steps
        self.steps += 1
        if step % self.every:
            return
        self._step_of_sample = step
        self._pending = []
        self._sample_handles = [
            module.register_forward_hook(self._hook_for(name, bounds)) for name, module, bounds in self._watched
        ]

    def _hook_for(self, name: str, bounds: tuple[float, float] | None) -> Callable[[Any, Any, Any], None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is not None and tensor.numel():
                self._pending.append((name, _statistics(tensor, bounds, self.histograms), bounds is not None))

        return hook

    def _after(self, model: Any, args: Any, output: Any) -> None:
        if not self._sample_handles:
            return
        for handle in self._sample_handles:
            handle.remove()
        self._sample_handles = []
        pending, self._pending = self._pending, []
        if not pending:
            return
        import torch

        host = torch.cat([stats.reshape(-1).to(torch.float64) for _, stats, _ in pending]).cpu().tolist()  # one transfer
        metrics: dict[str, float] = {}
        histograms: dict[str, Any] = {}
        offset = 0
        for name, stats, bounded in pending:
            values = host[offset : offset + stats.numel()]
            offset += stats.numel()
            names = [*STATS, SATURATION] if bounded else list(STATS)
            for stat, value in zip(names, values, strict=False):
                metrics[f"{PREFIX}{name}/{stat}"] = value
            if self.histograms:
                histograms[f"{PREFIX}{name}"] = _histogram_record(values[len(names) :], values[2], values[3])
        self._log_metrics(metrics, self._step_of_sample)
        if histograms:
            self._emit(HISTOGRAM, HistogramData(step=self._step_of_sample, values=histograms))


def _first_tensor(output: Any) -> Any:
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, torch.Tensor)), None)
    return None


def _statistics(tensor: Any, bounds: tuple[float, float] | None, histogram: bool) -> Any:
    """One float32 tensor on the output's device: the stats in STATS order, then saturation, then the histogram."""
    import torch

    with torch.no_grad():
        x = tensor.detach().float()
        low, high = x.min(), x.max()
        parts = [x.mean(), x.std(unbiased=False), low, high, (x == 0).float().mean()]
        if bounds is not None:
            lo, hi = bounds
            margin = _NEAR * (hi - lo)
            parts.append(((x <= lo + margin) | (x >= hi - margin)).float().mean())
        stats = torch.stack(parts)
        if histogram:
            finite = x[torch.isfinite(x)]
            counts = torch.histc(finite, bins=HISTOGRAM_BINS, min=0, max=0) if finite.numel() else x.new_zeros(HISTOGRAM_BINS)
            moments = torch.stack([finite.sum(), (finite * finite).sum(), x.new_tensor(float(finite.numel()))])
            stats = torch.cat([stats, moments, counts])
        return stats


def _histogram_record(values: list[float], low: float, high: float) -> dict[str, Any]:
    """The ``histogram`` event's shape (see weights.stats.histogram) from the sampled moments and counts."""
    total, squares, count = values[0], values[1], values[2]
    counts = values[3:]
    width = (high - low) / len(counts) if high > low else max(abs(high), 1.0) * 1e-6
    return {
        "min": low,
        "max": high,
        "num": int(count),
        "sum": total,
        "sum_squares": squares,
        "bucket_limits": [low + width * (i + 1) for i in range(len(counts))],
        "bucket_counts": [int(c) for c in counts],
    }

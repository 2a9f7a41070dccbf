"""Which parameter mattered in a sweep: each param's share of the metric's variation across runs.

The method, fANOVA-style main effects of a small additive regression model, is chosen to be
offline, deterministic (no random permutations, no service) and numpy-only:

1. each run gives one number: the metric's best value (its max or min, by the metric's name) or,
   when the name says nothing about direction, its last value;
2. each parameter that varies enters an additive model ``metric ≈ mean + Σ f_param``: a number
   as a quadratic in its value (in its log when the values are positive and span 20× or more,
   as learning rates do), a category (or a number with fewer than three values) as one
   indicator per level; all are fitted at once by least squares;
3. a parameter's importance is the variance of its ``f`` less what its number of columns would
   explain by chance in the residual noise (the ε² correction), as a share of the metric's total
   variance; what no main effect explains (noise, interactions, shapes a quadratic misses) is
   the ``residual``;
4. for display, each parameter is cut into at most five levels (its values, or quantile bins),
   with the metric's mean, min and max over the runs in each: the metric against the param.

Bookkeeping params are listed apart and never ranked; constant ones are listed too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from unitrack.analysis.bookkeeping import bookkeeping_reason
from unitrack.analysis_settings import AnalysisSettings
from unitrack.errors import UnitrackError
from unitrack.goals import goal

if TYPE_CHECKING:
    from unitrack.readers import RunView

METHOD = (
    "fANOVA-style main effects of an additive least-squares model (a quadratic per numeric param, "
    "in log scale for wide positive ranges; indicators per category): each param's share of the "
    "metric's variance, less what its number of columns explains by chance (ε²)"
)
MAX_LEVELS = 5
OPTUNA_VALUE = "optuna/value"  # the objective value the Optuna callback logs to each trial's run
_MISSING = "(unset)"


class SweepError(UnitrackError, ValueError):
    """The runs cannot be ranked (too few, or no metric they share)."""


@dataclass
class Level:
    """One level of a parameter and the metric over the runs in it: the metric against the param."""

    label: str
    runs: int
    mean: float
    low: float
    high: float


@dataclass
class ParamImportance:
    key: str
    importance: float  # share of the metric's variance this param's main effect explains (0..1)
    scale: str  # "values", "linear bins", "log bins" or "categories"
    levels: list[Level] = field(default_factory=list)


@dataclass
class SweepImportance:
    experiment: str | None
    metric: str
    value: str  # which number of each run: "max", "min" or "last"
    method: str
    runs: int
    params: list[ParamImportance]
    residual: float  # share of the variance no main effect explains
    constant: list[str] = field(default_factory=list)
    bookkeeping: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # runs left out, and why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def default_metric(views: Sequence[RunView]) -> str:
    """The metric to rank by: an Optuna study's objective when its trials logged it, else the most
    common one with a direction, validation/test ones first."""
    if sum(OPTUNA_VALUE in view.metric_keys for view in views) * 2 > len(views):
        return OPTUNA_VALUE
    counts = Counter(key for view in views for key in view.metric_keys if goal(key))
    if not counts:
        raise SweepError("no run of the sweep logged a metric whose name says which way is better; pass --metric KEY")
    return min(counts, key=lambda k: (-counts[k], 0 if ("val" in k.lower() or "test" in k.lower()) else 1, k))


def _levels(values: list[Any]) -> tuple[np.ndarray, list[str], str]:
    """Each run's level index, the levels' labels and how they were cut."""
    numbers = [_number(v) for v in values]
    distinct = sorted({repr(v) for v in values})
    if any(n is None for n in numbers) or len(distinct) <= MAX_LEVELS:
        if any(n is None for n in numbers):
            common = [label for label, _ in Counter(_label(v) for v in values).most_common(MAX_LEVELS)]
            labels = [_label(v) if _label(v) in common else "other" for v in values]
            order = sorted(set(labels), key=lambda s: (s == "other", s))
            scale = "categories"
        else:
            labels = [_label(v) for v in values]
            order = list(dict.fromkeys(_label(v) for _, v in sorted(zip(numbers, values, strict=True), key=lambda p: p[0] or 0.0)))
            scale = "values"
        index = {label: i for i, label in enumerate(order)}
        return np.array([index[label] for label in labels]), order, scale
    x = np.array(numbers, dtype=np.float64)
    log = bool(x.min() > 0 and x.max() / x.min() >= 20)
    bins = min(MAX_LEVELS, max(2, len(x) // 6))
    ranked = np.log10(x) if log else x
    edges = np.quantile(ranked, np.linspace(0, 1, bins + 1))
    codes = np.clip(np.searchsorted(edges[1:-1], ranked, side="right"), 0, bins - 1)
    used = sorted(set(codes.tolist()))
    remap = {c: i for i, c in enumerate(used)}
    labels = []
    for c in used:
        members = x[codes == c]
        labels.append(f"{members.min():.3g}..{members.max():.3g}")
    return np.array([remap[c] for c in codes.tolist()]), labels, "log bins" if log else "linear bins"


def _label(value: Any) -> str:
    if value is None:
        return _MISSING
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _columns(values: list[Any], scale: str, codes: np.ndarray, levels: int) -> np.ndarray:
    """The model's columns for one param, centred: a quadratic in the (log) value for a number,
    one indicator per level but the first for a category."""
    if scale in ("categories", "values") and (scale == "categories" or levels < 3):
        columns = np.stack([(codes == i).astype(np.float64) for i in range(1, levels)], axis=1)
    else:
        x = np.array([float(v) for v in values])
        x = np.log10(x) if scale == "log bins" or (x.min() > 0 and x.max() / x.min() >= 20) else x
        z = (x - x.mean()) / (x.std() or 1.0)
        columns = np.stack([z, z * z], axis=1)
    return columns - columns.mean(axis=0)


def _fit(y: np.ndarray, blocks: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Least squares of the centred metric on every param's columns at once (a whisker of ridge
    keeps a design with more columns than it can tell apart solvable); each param's fitted part."""
    centred = y - y.mean()
    if not blocks:
        return [], centred
    x = np.concatenate(blocks, axis=1)
    ridge = 1e-8 * float((x * x).sum()) / x.shape[1]
    beta = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ centred)
    parts, start = [], 0
    for block in blocks:
        parts.append(block @ beta[start : start + block.shape[1]])
        start += block.shape[1]
    return parts, centred - sum(parts, np.zeros_like(y))


def sweep_importance(views: Sequence[RunView], metric: str | None = None, settings: AnalysisSettings | None = None) -> SweepImportance:
    """Rank the params of ``views`` (the runs of one sweep) by how much of ``metric`` each explains."""
    settings = settings or AnalysisSettings()
    metric = metric or default_metric(views)
    direction = goal(metric)
    value_of = direction or "last"
    rows, skipped = [], []
    for view in sorted(views, key=lambda v: v.run_id):  # one order, so one result to the last bit
        if view.status == "pruned":  # stopped early by the study's pruner: its best is not comparable
            skipped.append({"run_id": view.run_id, "why": "pruned"})
            continue
        summary = view.summary.get(metric) or {}
        number = _number(summary.get(value_of))
        if number is None:
            skipped.append({"run_id": view.run_id, "why": f"no finite {metric} ({value_of})"})
        else:
            rows.append((view, number))
    if len(rows) < 4:
        raise SweepError(f"{len(rows)} run(s) have a finite {metric}: a sweep needs at least 4 to rank its params")
    y = np.array([n for _, n in rows])
    keys = sorted({k for view, _ in rows for k in view.params})
    ranked, constant, bookkeeping = [], [], []
    for key in keys:
        values = [view.params.get(key) for view, _ in rows]
        reason = bookkeeping_reason(key, [v for v in values if v is not None], settings.ignore_params, settings.keep_params)
        if len({repr(v) for v in values}) <= 1:
            constant.append(key)
        elif reason is not None:
            bookkeeping.append({"key": key, "reason": reason})
        else:
            ranked.append((key, *_levels(values)))
    total = float(((y - y.mean()) ** 2).sum())
    blocks = [_columns([view.params.get(key) for view, _ in rows], scale, code, len(labels)) for key, code, labels, scale in ranked]
    parts, residual = _fit(y, blocks)
    residual_ss = float((residual**2).sum())
    noise = residual_ss / max(1, len(y) - 1 - sum(b.shape[1] for b in blocks))
    params = []
    for (key, code, labels, scale), part, block in zip(ranked, parts, blocks, strict=True):
        share = max(0.0, float((part**2).sum()) - block.shape[1] * noise) / total if total > 0 else 0.0
        levels = [
            Level(label, int((code == i).sum()), float(y[code == i].mean()), float(y[code == i].min()), float(y[code == i].max()))
            for i, label in enumerate(labels)
        ]
        params.append(ParamImportance(key, round(share, 4), scale, levels))
    params.sort(key=lambda p: (-p.importance, p.key))
    experiments = {view.experiment for view, _ in rows}
    return SweepImportance(
        experiment=experiments.pop() if len(experiments) == 1 else None,
        metric=metric,
        value=value_of,
        method=METHOD,
        runs=len(rows),
        params=params,
        residual=round(residual_ss / total, 4) if total > 0 else 0.0,
        constant=constant,
        bookkeeping=bookkeeping,
        skipped=skipped,
    )


def explain_sweep(
    sweep: Any, metric: str | None = None, *, store: Any = None, settings: AnalysisSettings | None = None
) -> SweepImportance:
    """The param importance of a sweep: every finished run of experiment ``sweep`` (a name) in the
    local store, or the completed trials of ``sweep`` when it is an Optuna study (its objective
    ``value``, or ``metric`` naming one of its trials' user attributes)."""
    if not isinstance(sweep, str):
        return sweep_importance(_study_runs(sweep, metric or "value"), metric or "value", settings)
    from unitrack.reading import runs

    views = runs(store=store, experiment=sweep, status=["completed", "failed", "interrupted", "crashed", "pruned"])
    if not views:
        raise SweepError(f"no finished run of experiment {sweep!r} in the store")
    return sweep_importance(views, metric, settings)


def _study_runs(study: Any, metric: str) -> list[RunView]:
    """An Optuna study's completed trials as runs (read through the study's own API, no import)."""
    from unitrack.readers import RunView

    if not hasattr(study, "trials") or not hasattr(study, "study_name"):
        raise SweepError(f"explain_sweep takes an experiment name or an Optuna study, not {type(study).__name__}")
    views = []
    for trial in study.trials:
        if getattr(trial.state, "name", "") != "COMPLETE":
            continue
        if trial.values is not None and len(trial.values) > 1 and metric == "value":
            raise SweepError("a multi-objective study: pass metric=NAME of a trial user attribute to rank by")
        value = trial.value if metric == "value" else trial.user_attrs.get(metric)
        summary = {metric: {"last": value, "min": value, "max": value}} if value is not None else {}
        record = {"run_id": f"trial-{trial.number:05d}", "experiment": study.study_name, "params": dict(trial.params), "metric_summary": summary}
        views.append(RunView(record, source="optuna"))
    return views

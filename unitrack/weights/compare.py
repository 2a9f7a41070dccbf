"""Change metrics between two sets of weights, per tensor and per neuron, and the run-level summary.

:func:`compare_sources` walks the tensors the two sources share, one at a time (on two threads:
NumPy and BLAS release the GIL), with :func:`unitrack.weights.kernel.tensor_delta`; tensors with
the same content hash (an unchanged layer between two snapshots) are not read twice. Added,
removed, shape-changed and dtype-changed tensors are listed apart.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unitrack.weights.arrays import as_float
from unitrack.weights.kernel import DeltaWork, TensorDelta, blocks, cosine, tensor_delta
from unitrack.weights.plugins import METRICS
from unitrack.weights.sources import TensorMeta, WeightSource
from unitrack.weights.sums import A2, AB, B2, CHANGED, D2, L1, MAX

THREADS = 2


@dataclass
class TensorChange:
    """One tensor's change a → b: the sums, and what is reported from them."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    delta: TensorDelta
    dtype_b: str | None = None
    from_init_l2: float | None = None
    sparsity: tuple[float, float] | None = None  # the fraction of zeros in a and in b, when both are known
    extra: dict[str, float] = field(default_factory=dict)

    def neurons(self, top_k: int, tolerance: float = 0.0) -> dict[str, Any] | None:
        """Per row of [out, -1]: the ``top_k`` rows that moved most (L2 of their change), and how many
        did not move; for tensors of two or more dimensions each top row also has its L1, L∞,
        cosine and changed count."""
        rows = self.delta.row_d2
        if rows is None:
            return None
        norms = np.sqrt(rows)
        order = np.argsort(-norms, kind="stable")[:top_k]
        return {
            "units": int(norms.size),
            "unmoved": int(np.count_nonzero(norms <= tolerance)),
            "top": [{"unit": int(i), "l2": float(norms[i]), **self.neuron(int(i))} for i in order],
        }

    def neuron(self, unit: int) -> dict[str, float]:
        """Every metric of one row of [out, -1] (empty for 1-D tensors, whose rows are single elements)."""
        stats = self.delta.rows
        if stats is None:
            return {}
        column = stats[:, unit]
        return {
            "l1": float(column[L1]),
            "l2": math.sqrt(column[D2]),
            "max_abs": float(column[MAX]),
            "cosine": cosine(column[AB], column[A2], column[B2]),
            "changed": int(column[CHANGED]),
        }

    def row(self, top_k: int = 5, tolerance: float = 0.0) -> dict[str, Any]:
        d = self.delta
        row: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "numel": d.numel,
            "l1": d.l1,
            "mean_abs": d.mean_abs,
            "l2": d.l2,
            "relative": d.relative,
            "cosine": d.cosine,
            "max_abs": d.max_abs,
            "changed": d.changed,
            "changed_fraction": d.changed_fraction,
            "norm_a": d.norm_a,
            "norm_b": d.norm_b,
            "nan": {"a": d.nan_a, "b": d.nan_b},
            "inf": {"a": d.inf_a, "b": d.inf_b},
        }
        if self.dtype_b is not None and self.dtype_b != self.dtype:
            row["dtype_b"] = self.dtype_b
        if self.from_init_l2 is not None:
            row["from_init_l2"] = self.from_init_l2
        if self.sparsity is not None:
            row["sparsity"] = {"a": self.sparsity[0], "b": self.sparsity[1]}
        neurons = self.neurons(top_k, tolerance)
        if neurons is not None:
            row["neurons"] = neurons
        row.update(self.extra)
        return row


@dataclass
class DeltaReport:
    source_a: str
    source_b: str
    changes: list[TensorChange]
    added: list[str]
    removed: list[str]
    shape_changed: list[dict[str, Any]]
    tolerance: float = 0.0

    def by_name(self) -> dict[str, TensorChange]:
        return {change.name: change for change in self.changes}

    def largest_first(self) -> list[TensorChange]:
        return sorted(self.changes, key=lambda c: (-_sortable(c.delta.relative), c.name))

    def total(self) -> dict[str, float]:
        """Over all shared tensors as one vector: L2 of the change, relative to ‖W_a‖, L1, changed fraction."""
        sum_d2 = sum(c.delta.sum_d2 for c in self.changes)
        sum_a2 = sum(c.delta.sum_a2 for c in self.changes)
        numel = sum(c.delta.numel for c in self.changes)
        changed = sum(c.delta.changed for c in self.changes)
        l2 = math.sqrt(sum_d2)
        return {
            "l2": l2,
            "relative": l2 / (math.sqrt(sum_a2) + 1e-12),
            "l1": sum(c.delta.l1 for c in self.changes),
            "numel": numel,
            "changed_fraction": changed / numel if numel else 0.0,
        }

    def to_dict(self, top_k: int = 5) -> dict[str, Any]:
        return {
            "source_a": self.source_a,
            "source_b": self.source_b,
            "tolerance": self.tolerance,
            "tensors": [c.row(top_k, self.tolerance) for c in self.largest_first()],
            "total": self.total(),
            "added": self.added,
            "removed": self.removed,
            "shape_changed": self.shape_changed,
            "dtype_changed": [
                {"name": c.name, "a": c.dtype, "b": c.dtype_b} for c in self.changes if c.dtype_b not in (None, c.dtype)
            ],
        }


def _sortable(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def compare_sources(
    a: WeightSource,
    b: WeightSource,
    *,
    tolerance: float = 0.0,
    per_row: bool = True,
    init: WeightSource | None = None,
    threads: int = THREADS,
) -> DeltaReport:
    """Every change metric between ``a`` and ``b``; with ``init``, also each tensor's L2 distance from it."""
    meta_a, meta_b = a.tensors(), b.tensors()
    shared = [n for n in meta_a if n in meta_b and meta_a[n].shape == meta_b[n].shape]
    shape_changed = [
        {"name": n, "a": list(meta_a[n].shape), "b": list(meta_b[n].shape)}
        for n in meta_a
        if n in meta_b and meta_a[n].shape != meta_b[n].shape
    ]

    works: dict[str, DeltaWork] = {}
    for name in shared:
        ma, mb = meta_a[name], meta_b[name]
        left = a.array(name)
        same = ma.digest is not None and ma.digest == mb.digest and ma.dtype == mb.dtype
        right = left if same else b.array(name)  # the same content: one read (for the norms), no second file
        works[name] = DeltaWork(left, right, ma.dtype, mb.dtype, tolerance=tolerance, per_row=per_row)
    _run(list(works.values()), threads)
    changes = []
    for name in shared:
        change = TensorChange(name, meta_a[name].shape, meta_a[name].dtype, works[name].result(), dtype_b=meta_b[name].dtype)
        _extras(change, a, b, init)
        changes.append(change)
    return DeltaReport(
        a.label,
        b.label,
        changes,
        added=[n for n in meta_b if n not in meta_a],
        removed=[n for n in meta_a if n not in meta_b],
        shape_changed=shape_changed,
        tolerance=tolerance,
    )


def _run(works: list[DeltaWork], threads: int) -> None:
    """Every block of every tensor, on ``threads`` threads (the compiled loop releases the GIL)."""
    jobs = list(blocks(works))
    if threads <= 1 or len(jobs) <= 1:
        for work, index in jobs:
            work.run(index)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="unitrack-delta") as pool:
        for _ in pool.map(lambda job: job[0].run(job[1]), jobs):
            pass


def _extras(change: TensorChange, a: WeightSource, b: WeightSource, init: WeightSource | None) -> None:
    """The distance from ``init`` and the registered plugin metrics of one tensor."""
    name = change.name
    ma, mb = a.tensors()[name], b.tensors()[name]
    if ma.zeros is not None and mb.zeros is not None and change.delta.numel:
        change.sparsity = (ma.zeros / change.delta.numel, mb.zeros / change.delta.numel)
    if init is not None:
        change.from_init_l2 = _distance(init, b, name, b.tensors()[name])
    if METRICS:
        left, right = as_float(a.array(name), change.dtype), as_float(b.array(name), change.dtype_b or change.dtype)
        change.extra = {metric: float(fn(left, right)) for metric, fn in METRICS.items()}


def _distance(init: WeightSource, b: WeightSource, name: str, mb: TensorMeta) -> float | None:
    meta = init.tensors().get(name)
    if meta is None or meta.shape != mb.shape:
        return None
    if meta.digest is not None and meta.digest == mb.digest:
        return 0.0
    return tensor_delta(init.array(name), b.array(name), meta.dtype, mb.dtype, per_row=False).l2


def summarize_run_delta(store: Any, ref_a: str, ref_b: str) -> dict[str, Any] | None:
    """Per-layer change between the final weights (last checkpoint or snapshot) of two runs
    (``RUN@best``, ``RUN@STEP``... pick other weights of a run).

    ``{"source_a", "source_b", "layers": [{name, shape, l2, relative, cosine, max_abs,
    changed_fraction}] (largest relative change first), "total": {l2, relative}, "added",
    "removed"}``; None when either run has no weights. ``unitrack compare`` shows it.
    """
    from unitrack.weights.refs import open_run_weights

    source_a, source_b = open_run_weights(store, ref_a), open_run_weights(store, ref_b)
    if source_a is None or source_b is None:
        return None
    report = compare_sources(source_a, source_b, per_row=False)
    total = report.total()
    return {
        "source_a": report.source_a,
        "source_b": report.source_b,
        "layers": [
            {
                "name": c.name,
                "shape": list(c.shape),
                "l2": c.delta.l2,
                "relative": c.delta.relative,
                "cosine": c.delta.cosine,
                "max_abs": c.delta.max_abs,
                "changed_fraction": c.delta.changed_fraction,
                **({"sparsity": {"a": c.sparsity[0], "b": c.sparsity[1]}} if c.sparsity else {}),
            }
            for c in report.largest_first()
        ],
        "total": {"l2": total["l2"], "relative": total["relative"]},
        "added": report.added,
        "removed": report.removed,
    }


def run_delta(
    store: Any, ref: str, from_step: int | None = None, to_step: int | None = None, tolerance: float = 0.0
) -> DeltaReport:
    """How run ``ref``'s weights moved from its first weights (or ``from_step``) to its final ones
    (or ``to_step``), with each tensor's distance from the first: ``unitrack delta RUN``."""
    from unitrack.weights.refs import pick_point, run_weight_points

    points = run_weight_points(store, ref)
    start = pick_point(points, "first" if from_step is None else str(from_step), ref)
    end = pick_point(points, None if to_step is None else str(to_step), ref)
    if start is end:  # a table of zeros would read as a result
        raise ValueError(_one_point_message(ref, start, len(points)))
    return compare_sources(start.open(), end.open(), tolerance=tolerance, init=points[0].open())


def _one_point_message(run: str, point: Any, count: int) -> str:
    """What to do when a run's delta would compare a set of weights with itself."""
    what = f"{point.kind} {point.name!r} (step {point.step})"
    if count == 1:
        head = f"run {run} has only one set of weights, {what}: there is nothing in it to compare"
    else:
        head = f"--from and --to both pick {what} of run {run}"
    return (
        f"{head}. Compare it with another run or a weights file (`unitrack delta {run} OTHER_RUN`), or record "
        "more snapshots in the run (watch(model, snapshot_every=N) or tracker.snapshot_weights(model))"
    )

"""The change metrics of one tensor pair: one fused pass, per tensor and per neuron, in large blocks.

The arrays are usually views of memory-mapped files. A tensor is cut into blocks of whole rows of
``[out, -1]`` (about :data:`BLOCK` elements each) and each block is one call of a compiled loop
(:mod:`unitrack.weights.fused`) that reads every element once and keeps every sum at once, per
row: Σ|Δ|, ΣΔ², Σa², Σb², Σab, max|Δ|, the changed count. Blocks are independent, so
:func:`unitrack.weights.compare.compare_sources` runs the blocks of all tensors on its threads
(the loops release the GIL) and a single huge tensor still uses every core. Nothing is copied
for float32 / float64 / bfloat16 contiguous arrays; other dtypes (float16, integers, bool) and
non-contiguous arrays are widened or copied one block at a time, so peak memory is the per-row
sums plus a few blocks, whatever the tensor's size.

A pair where either side is NaN or ±Inf is left out of every sum and counted; only when a
tensor has such pairs are its NaNs and Infs counted per side (a second pass, NumPy, rare).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from unitrack.weights.arrays import BFLOAT16, as_float

BLOCK = 1 << 22  # elements per call: 16 MiB of float32 per side, ~1 ms of work, Python overhead negligible
EPS = 1e-12
_EXACT_IN_FLOAT32 = {"float32", BFLOAT16, "float16", "int8", "uint8", "int16", "uint16", "bool"}


@dataclass
class TensorDelta:
    """Sums over one tensor pair (a → b), and the metrics derived from them.

    ``rows`` holds the same sums per row of ``[out, -1]`` (per neuron: one column per row, the
    fields of :data:`unitrack.weights.fused.FIELDS`) for tensors of two or more dimensions;
    ``row_d2`` is each row's ‖Δ‖² (for a 1-D tensor, each element's Δ²).
    """

    numel: int
    l1: float = 0.0
    sum_d2: float = 0.0
    sum_a2: float = 0.0
    sum_b2: float = 0.0
    sum_ab: float = 0.0
    max_abs: float = 0.0
    changed: int = 0
    nan_a: int = 0
    nan_b: int = 0
    inf_a: int = 0
    inf_b: int = 0
    rows: np.ndarray | None = field(default=None, repr=False)
    row_d2: np.ndarray | None = field(default=None, repr=False)

    @property
    def l2(self) -> float:
        return math.sqrt(self.sum_d2)

    @property
    def norm_a(self) -> float:
        return math.sqrt(self.sum_a2)

    @property
    def norm_b(self) -> float:
        return math.sqrt(self.sum_b2)

    @property
    def mean_abs(self) -> float:
        return self.l1 / self.numel if self.numel else 0.0

    @property
    def relative(self) -> float:
        return self.l2 / (self.norm_a + EPS)

    @property
    def cosine(self) -> float:
        return cosine(self.sum_ab, self.sum_a2, self.sum_b2)

    @property
    def changed_fraction(self) -> float:
        return self.changed / self.numel if self.numel else 0.0


def cosine(ab: float, a2: float, b2: float) -> float:
    """⟨a, b⟩ / (‖a‖ ‖b‖), clipped to [-1, 1]; two zero vectors are alike (1), one zero vector is not (0)."""
    denominator = math.sqrt(a2) * math.sqrt(b2)
    if denominator == 0.0:
        return 1.0 if a2 == b2 == 0.0 else 0.0
    return max(-1.0, min(1.0, ab / denominator))


def rows_of(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """A tensor as ``[out, -1]``: (rows, row length); None for a scalar or an empty tensor."""
    if not shape or 0 in shape:
        return None
    rows = shape[0]
    return rows, int(np.prod(shape[1:], dtype=np.int64))


class DeltaWork:
    """One tensor pair's delta, as independent blocks of rows: run every block (on any thread),
    then :meth:`result` adds them up."""

    def __init__(
        self, a: np.ndarray, b: np.ndarray, dtype_a: str, dtype_b: str, *, tolerance: float = 0.0, per_row: bool = True
    ) -> None:
        self.numel = int(a.size)
        self.tolerance = float(tolerance)
        self.dtypes = (dtype_a, dtype_b)
        shape = tuple(a.shape) or (1,)
        self.a, self.b = a.reshape(shape), b.reshape(shape)
        self.length = int(np.prod(shape[1:], dtype=np.int64))
        layout = rows_of(tuple(a.shape)) if per_row else None
        self.rows = np.zeros((8, shape[0])) if layout is not None and self.length > 1 else None
        self.squares = np.zeros(shape[0]) if layout is not None and self.length == 1 else None
        self.widen = _widening(a.dtype, b.dtype, dtype_a, dtype_b)
        per_block = max(1, BLOCK // max(1, self.length))
        self.blocks = [(first, min(first + per_block, shape[0])) for first in range(0, shape[0] if self.numel else 0, per_block)]
        self.totals = np.zeros((len(self.blocks), 8))

    def run(self, index: int) -> None:
        """Compute block ``index`` (releases the GIL while it runs)."""
        from unitrack.weights import fused

        first, last = self.blocks[index]
        a = self._operand(self.a[first:last], self.dtypes[0])
        b = self._operand(self.b[first:last], self.dtypes[1])
        if self.rows is not None:
            fused.rows_kernel(a, b, self.length, self.tolerance, self.rows[:, first:last])
            return
        fused.rows_kernel(a, b, a.size, self.tolerance, self.totals[index].reshape(8, 1))  # the block as one row
        if self.squares is not None:
            fused.squares_kernel(a, b, self.squares[first:last])

    def _operand(self, block: np.ndarray, dtype: str) -> np.ndarray:
        if self.widen is not None:
            return np.ascontiguousarray(as_float(block, dtype), dtype=self.widen).reshape(-1)
        return np.ascontiguousarray(block).reshape(-1)

    def result(self) -> TensorDelta:
        sums = self.rows.sum(axis=1) if self.rows is not None else self.totals.sum(axis=0)
        if self.rows is not None:
            sums[5] = self.rows[5].max(initial=0.0)
        elif len(self.totals):
            sums[5] = self.totals[:, 5].max()
        delta = TensorDelta(
            numel=self.numel, l1=float(sums[0]), sum_d2=float(sums[1]), sum_a2=float(sums[2]), sum_b2=float(sums[3]),
            sum_ab=float(sums[4]), max_abs=float(sums[5]), changed=int(sums[6]), rows=self.rows,
            row_d2=self.rows[1] if self.rows is not None else self.squares,
        )  # fmt: skip
        if sums[7]:
            delta.nan_a, delta.inf_a = _nonfinite(self.a, self.dtypes[0])
            delta.nan_b, delta.inf_b = _nonfinite(self.b, self.dtypes[1])
        return delta


def _widening(storage_a: np.dtype, storage_b: np.dtype, dtype_a: str, dtype_b: str) -> np.dtype | None:
    """The dtype both sides are widened to before the compiled loop, or None when it reads them as they are."""
    from unitrack.weights.fused import NATIVE

    if dtype_a == dtype_b and (dtype_a == BFLOAT16 or storage_a in NATIVE) and storage_a == storage_b:
        return None
    exact = dtype_a in _EXACT_IN_FLOAT32 and dtype_b in _EXACT_IN_FLOAT32
    return np.dtype(np.float32 if exact else np.float64)


def _nonfinite(array: np.ndarray, dtype: str) -> tuple[int, int]:
    """(NaN count, Inf count) of an array, a block at a time."""
    flat = array.reshape(-1)
    nan = inf = 0
    if dtype not in _EXACT_IN_FLOAT32 and not np.issubdtype(flat.dtype, np.floating):
        return 0, 0  # integers and bools have neither
    for start in range(0, flat.size, BLOCK):
        values = as_float(flat[start : start + BLOCK], dtype)
        if np.issubdtype(values.dtype, np.floating):
            nan += int(np.count_nonzero(np.isnan(values)))
            inf += int(np.count_nonzero(np.isinf(values)))
    return nan, inf


def tensor_delta(
    a: np.ndarray, b: np.ndarray, dtype_a: str, dtype_b: str, *, tolerance: float = 0.0, per_row: bool = True
) -> TensorDelta:
    """Every per-tensor sum of ``b - a``, and with ``per_row`` every per-row one, on the calling thread."""
    work = DeltaWork(a, b, dtype_a, dtype_b, tolerance=tolerance, per_row=per_row)
    for index in range(len(work.blocks)):
        work.run(index)
    return work.result()


def blocks(works: list[DeltaWork]) -> Iterator[tuple[DeltaWork, int]]:
    """Every block of ``works``, the largest tensors' first, so threads finish together."""
    for work in sorted(works, key=lambda w: -w.numel):
        for index in range(len(work.blocks)):
            yield work, index

"""The compiled loops of the weight-delta kernel: every sum of a tensor pair in one pass (numba).

Each element of ``a`` and ``b`` is read once, widened to float64 in a register, and feeds every
accumulator at once: Σ|Δ|, ΣΔ², Σa², Σb², Σab, max|Δ|, the changed count and the count of pairs
left out because either side is NaN or ±Inf. ``rows_kernel`` keeps these per row of ``[out, -1]``
(per neuron; a whole block as one row when only the tensor's totals are wanted);
``squares_kernel`` writes each element's Δ² (for 1-D tensors, whose "neurons" are their elements).

Exactness: every value is widened to float64 before it is used, as the NumPy reference does; the
only liberty the compiler gets is to reorder the float64 sums (``reassoc``: SIMD lanes each
summing a share), which changes results by ~1e-16 relative, not the 1e-9 the tests hold us to.
Finiteness is tested on the float64's bits, which no fast-math flag can fold away; the maximum
is ``llvm.maxnum`` marked NaN-free (it only ever sees finite values), which is what lets LLVM
vectorise the loop with it. Compiled once per input type (float32, float64, bfloat16 bits as
uint16) and cached on disk; other dtypes are widened to one of these before the call.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from unitrack.weights.sums import A2, AB, B2, CHANGED, D2, FIELDS, L1, MAX, NONFINITE  # noqa: F401 (re-exported)

# fast-math flags: reorder sums, fuse multiply-adds; never assume values are finite
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


def _wide_typing(typingctx: Any, x: Any) -> Any:
    """A float32 / float64 as float64; a uint16 as the bfloat16 those bits are, as float64."""
    if x not in (types.float32, types.float64, types.uint16):
        return None
    signature = types.float64(x)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        value = args[0]
        if x == types.float64:
            return value
        if x == types.uint16:  # bfloat16 is the top half of a float32
            bits = builder.shl(builder.zext(value, ir.IntType(32)), ir.Constant(ir.IntType(32), 16))
            value = builder.bitcast(bits, ir.FloatType())
        return builder.fpext(value, ir.DoubleType())

    return signature, codegen


def _finite_typing(typingctx: Any, x: Any) -> Any:
    """Whether a float64 is finite, from its exponent bits."""
    signature = types.boolean(types.float64)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        bits = builder.bitcast(args[0], ir.IntType(64))
        exponent = ir.Constant(ir.IntType(64), 0x7FF0000000000000)
        return builder.icmp_unsigned("!=", builder.and_(bits, exponent), exponent)

    return signature, codegen


def _max_typing(typingctx: Any, x: Any, y: Any) -> Any:
    """max of two finite float64s as llvm.maxnum flagged NaN-free, so the loop vectorises."""
    signature = types.float64(types.float64, types.float64)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        double = ir.DoubleType()
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(double, [double, double]), "llvm.maxnum.f64")
        return builder.call(function, args, fastmath=("nnan", "nsz"))

    return signature, codegen


# numba's intrinsics: typed here as Any, which they are to mypy's eyes (called only inside the loops)
_wide: Any = intrinsic(_wide_typing)
_finite: Any = intrinsic(_finite_typing)
_max: Any = intrinsic(_max_typing)


@numba.njit(nogil=True, fastmath=_FASTMATH, cache=True)
def rows_kernel(a: Any, b: Any, length: int, tolerance: float, out: Any) -> None:  # pragma: no cover - compiled
    """Per row of ``length`` elements of the flat ``a`` and ``b``: every sum, into ``out[:, row]``."""
    for row in range(out.shape[1]):
        l1 = d2 = a2 = b2 = ab = top = changed = bad = 0.0
        for i in range(row * length, (row + 1) * length):
            x = _wide(a[i])
            y = _wide(b[i])
            ok = _finite(x) & _finite(y)
            x = x if ok else 0.0
            y = y if ok else 0.0
            d = y - x
            e = abs(d)
            l1 += e
            d2 += d * d
            a2 += x * x
            b2 += y * y
            ab += x * y
            top = _max(top, e)
            changed += 1.0 if e > tolerance else 0.0
            bad += 0.0 if ok else 1.0
        out[0, row] = l1
        out[1, row] = d2
        out[2, row] = a2
        out[3, row] = b2
        out[4, row] = ab
        out[5, row] = top
        out[6, row] = changed
        out[7, row] = bad


@numba.njit(nogil=True, fastmath=_FASTMATH, cache=True)
def squares_kernel(a: Any, b: Any, squares: Any) -> None:  # pragma: no cover - compiled
    """Each element's Δ² (0 where either side is not finite): the "neurons" of a 1-D tensor."""
    for i in range(a.size):
        x = _wide(a[i])
        y = _wide(b[i])
        d = y - x
        squares[i] = d * d if _finite(x) & _finite(y) else 0.0


NATIVE = (np.dtype(np.float32), np.dtype(np.float64))
"""Storage dtypes the loops read directly (and bfloat16's uint16 bits); others are widened first."""

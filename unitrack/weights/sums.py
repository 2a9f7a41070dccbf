"""The sums the weight-delta kernel keeps per tensor pair, by position: their names and indices.

Apart from the compiled loops (``fused``) so that reading the sums — ``compare``, ``explain``,
``delta`` of runs without weights — does not import numba (about a second).
"""

FIELDS = ("l1", "d2", "a2", "b2", "ab", "max_abs", "changed", "nonfinite")
L1, D2, A2, B2, AB, MAX, CHANGED, NONFINITE = range(len(FIELDS))

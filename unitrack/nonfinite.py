"""The one way unitrack writes numbers JSON cannot hold: NaN, inf and -inf as "nan", "inf", "-inf".

Strict JSON has no NaN or infinity, and a diverged run logs them. Every file and output that
holds numbers (the journal, ``summary.json``, the checkpoint registry and headers, ``params``,
``show --json``, ``export``, the dashboard's API) writes them through :func:`encode_number` or
:func:`json_safe`, so the same three strings mean the same thing everywhere, and
:func:`decode_number` reads them back. A wire format with its own words for them (protobuf's JSON
mapping, which MLflow's REST API parses) passes its spelling, :data:`PROTOBUF`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

Number = float | int

UNITRACK = ("nan", "inf", "-inf")  # how NaN, +inf and -inf are written in unitrack's own files
PROTOBUF = ("NaN", "Infinity", "-Infinity")  # protobuf's JSON mapping of a double (MLflow's REST API)
_TOKENS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode_number(value: Number, spelling: tuple[str, str, str] = UNITRACK) -> Number | str:
    """A JSON-safe form of a number: finite numbers as they are, NaN/inf as strings (``spelling``)."""
    if value - value == 0:  # false only for NaN and +-inf
        return value
    if value != value:
        return spelling[0]
    return spelling[1] if value > 0 else spelling[2]


def decode_number(value: Number | str) -> Number:
    """The inverse of :func:`encode_number` (any other string reads as NaN)."""
    if isinstance(value, str):
        return _TOKENS.get(value, math.nan)
    return value


def json_safe(value: Any) -> Any:
    """Data ready for strict JSON: non-finite floats encoded, keys as text, tuples as lists, paths as text."""
    if isinstance(value, float):
        return encode_number(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value

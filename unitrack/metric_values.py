"""Checking what ``log_metrics`` is given: the slow path, off the per-call cost.

``ExperimentTracker.log_metrics`` takes plain ``int`` and ``float`` values and known keys inline;
everything else (a key seen for the first time, nested dicts, bools, NumPy / torch / JAX scalars,
wrong types) comes here. Tensors are only checked, not read: the writer thread converts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def check_metric_key(key: Any, known: set[str]) -> None:
    if not isinstance(key, str):
        raise TypeError(f"metric names must be strings, got {key!r} ({type(key).__name__})")
    if not key or not key.strip():
        raise ValueError("metric names must not be empty")
    known.add(key)


def checked_step(step: Any) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise TypeError(f"step must be an integer, got {step!r} ({type(step).__name__})")
    value = step.__index__()
    if value < 0:
        raise ValueError(f"step must not be negative, got {value}")
    return value


def add_metric_value(key: str, value: Any, values: dict[str, Any], known: set[str]) -> None:
    """The slow path of ``log_metrics``: nested dicts, bools, NumPy and torch values, errors."""
    if isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            if not isinstance(sub_key, str):
                raise TypeError(f"metric names must be strings, got {sub_key!r} under {key!r}")
            name = f"{key}/{sub_key}"
            if name not in known:
                check_metric_key(name, known)
            if type(sub_value) is float or type(sub_value) is int:
                values[name] = sub_value
            else:
                add_metric_value(name, sub_value, values, known)
        return
    if isinstance(value, bool):
        values[key] = int(value)
        return
    if isinstance(value, (str, bytes)):
        raise TypeError(f"metric {key!r} is text ({value!r}); metrics must be numbers — log text with set_tags")
    if value is None:
        raise TypeError(f"metric {key!r} is None; metrics must be numbers")
    module = type(value).__module__.split(".")[0]
    if module in ("torch", "numpy", "jax", "jaxlib"):
        size = value.numel() if callable(getattr(value, "numel", None)) else getattr(value, "size", 1)
        if size != 1:
            shape = tuple(getattr(value, "shape", ()))
            raise ValueError(f"metric {key!r} has {size} elements (shape {shape}); log one number per metric")
        dtype = str(getattr(value, "dtype", ""))
        if "complex" in dtype or not any(t in dtype for t in ("float", "int", "bool", "half")):
            raise TypeError(f"metric {key!r} has dtype {dtype}; metrics must be real numbers")
        values[key] = value  # converted to a float by the writer thread
        return
    try:
        values[key] = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {key!r} is a {type(value).__name__}; metrics must be numbers") from None

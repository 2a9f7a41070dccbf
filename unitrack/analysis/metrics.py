"""How each metric moved between two runs: last, best, at a common step, and which run won.

Curves are numpy arrays (``RunView.history``), so two runs of 100,000 points compare in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from unitrack.goals import goal

Point = dict[str, Any]
LoggedCurve = tuple[np.ndarray, np.ndarray, bool]  # steps (int64), values (float64), every value an int
_EMPTY: LoggedCurve = (np.zeros(0, np.int64), np.zeros(0, np.float64), False)

def _number(value: Any, ints: bool) -> Any:
    """A numpy scalar as the Python number the journal held (an int when the key only logged ints)."""
    return int(value) if ints and math.isfinite(value) else float(value)


def _side(curve: LoggedCurve, direction: str | None) -> dict[str, Any]:
    steps, values, ints = curve
    finite = np.isfinite(values)
    count = int(finite.sum())
    best = None
    if count and direction:
        if direction == "max":
            best = int(np.argmax(np.where(finite, values, -np.inf)))
        else:
            best = int(np.argmin(np.where(finite, values, np.inf)))
    last = len(values) - 1
    return {
        "last": _number(values[last], ints) if last >= 0 else None,
        "last_step": int(steps[last]) if last >= 0 else None,
        "best": _number(values[best], ints) if best is not None else None,
        "best_step": int(steps[best]) if best is not None else None,
        "points": len(values),
        "non_finite": len(values) - count,
        "diverged_at_step": diverged_at_arrays(steps, values) if direction == "min" else None,
    }


def diverged_at(points: list[Point]) -> int | None:
    """:func:`diverged_at_arrays` of ``[{step, value}]`` points."""
    steps = np.array([int(p["step"]) for p in points], dtype=np.int64)
    values = np.array([float(p["value"]) for p in points], dtype=np.float64)
    return diverged_at_arrays(steps, values)


def diverged_at_arrays(steps: np.ndarray, values: np.ndarray) -> int | None:
    """The step from which a loss diverged, if it did: went non-finite, or ended (smoothed over a
    tenth of the run, so that noisy minibatch losses don't count) above 3× its lowest value —
    the step after the last one still within 2× of that low."""
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        first = int(bad[0])
        return _climb_start(steps[:first], values[:first]) or int(steps[first])
    return _climb_start(steps, values)


def _climb_start(steps: np.ndarray, values: np.ndarray) -> int | None:
    count = len(values)
    if not count:
        return None
    window = max(1, count // 10)
    sums = np.concatenate(([0.0], np.cumsum(values, dtype=np.float64)))
    ends = np.arange(1, count + 1)
    starts = np.maximum(0, ends - window)
    smooth = (sums[ends] - sums[starts]) / (ends - starts)
    low = float(smooth.min())
    if low <= 0 or smooth[-1] <= 3 * low or smooth[-1] - low <= 1e-3:
        return None
    last_good = int(np.flatnonzero(smooth <= 2 * low)[-1])
    return int(steps[last_good + 1])


def _at_common_step(a: LoggedCurve, b: LoggedCurve) -> dict[str, Any] | None:
    common = np.flatnonzero(np.isin(a[0], b[0]))
    if not len(common):
        return None
    index = int(common[-1])
    step = a[0][index]
    in_b = int(np.flatnonzero(b[0] == step)[-1])  # the last point of b at that step
    return {"step": int(step), "a": _number(a[1][index], a[2]), "b": _number(b[1][in_b], b[2])}


def _change(a: Any, b: Any) -> tuple[float | None, float | None]:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not (math.isfinite(a) and math.isfinite(b)):
        return None, None
    absolute = b - a
    return absolute, (absolute / abs(a) if a else None)


def _winner(direction: str | None, a: Any, b: Any) -> str | None:
    if direction is None:
        return None
    bad_a = not isinstance(a, (int, float)) or not math.isfinite(a)
    bad_b = not isinstance(b, (int, float)) or not math.isfinite(b)
    if bad_a or bad_b:
        return None if bad_a and bad_b else ("b" if bad_a else "a")
    if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
        return "tie"
    return ("b" if b > a else "a") if direction == "max" else ("b" if b < a else "a")


def compare_metrics(curves_a: Mapping[str, LoggedCurve], curves_b: Mapping[str, LoggedCurve]) -> list[dict[str, Any]]:
    """One entry per metric of either run; results (accuracy, loss...) first, biggest relative change first."""
    entries: list[dict[str, Any]] = []
    for key in sorted(set(curves_a) | set(curves_b)):
        points_a, points_b = curves_a.get(key, _EMPTY), curves_b.get(key, _EMPTY)
        direction = goal(key)
        side_a, side_b = _side(points_a, direction), _side(points_b, direction)
        absolute, relative = _change(side_a["last"], side_b["last"])
        compare_on = ("best" if direction else "last")
        entries.append(
            {
                "key": key,
                "goal": direction,
                "a": side_a,
                "b": side_b,
                "same_step": _at_common_step(points_a, points_b),
                "abs_change": absolute,
                "rel_change": relative,
                "winner": _winner(direction, side_a[compare_on], side_b[compare_on]),
            }
        )
    entries.sort(key=lambda e: (e["goal"] is None, -abs(e["rel_change"] or 0.0), e["key"]))
    return entries


def overfitting_gap(curves: Mapping[str, LoggedCurve]) -> dict[str, Any] | None:
    """The last validation loss minus the last training loss, when the run logged both."""
    train = next((k for k in curves if "loss" in k.lower() and "train" in k.lower()), None)
    valid = next((k for k in curves if "loss" in k.lower() and ("val" in k.lower() or "test" in k.lower())), None)
    if not train or not valid or not len(curves[train][1]) or not len(curves[valid][1]):
        return None
    t, v = (_number(curves[k][1][-1], curves[k][2]) for k in (train, valid))
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in (t, v)):
        return None
    return {"train": train, "validation": valid, "gap": v - t}

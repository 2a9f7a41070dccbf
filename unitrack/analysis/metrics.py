"""How each metric moved between two runs: last, best, at a common step, and which run won."""

from __future__ import annotations

import math
from typing import Any

Point = dict[str, Any]

_HIGHER_IS_BETTER = ("acc", "f1", "auc", "precision", "recall", "score", "iou", "map", "bleu", "rouge", "r2", "dice")
_LOWER_IS_BETTER = ("loss", "err", "perplexity", "ppl", "mse", "mae", "rmse", "wer", "cer", "nll")
_NOT_RESULTS = ("throughput", "eta", "steps_per", "samples_per", "lr", "learning_rate", "time", "epoch")


def goal(key: str) -> str | None:
    """``"max"`` or ``"min"`` when the metric's name says which way is better, else None."""
    lowered = key.lower()
    words = lowered.replace("/", "_").replace(".", "_").replace("-", "_").split("_")
    if any(word in _NOT_RESULTS for word in words) or lowered.startswith(("progress", "system")):
        return None
    if any(word.startswith(_HIGHER_IS_BETTER) for word in words):
        return "max"
    if any(word.startswith(_LOWER_IS_BETTER) for word in words):
        return "min"
    return None


def _finite(points: list[Point]) -> list[Point]:
    return [p for p in points if isinstance(p["value"], (int, float)) and math.isfinite(p["value"])]


def _side(points: list[Point], direction: str | None) -> dict[str, Any]:
    last = points[-1] if points else None
    finite = _finite(points)
    best = None
    if finite and direction:
        best = (max if direction == "max" else min)(finite, key=lambda p: p["value"])
    return {
        "last": last["value"] if last else None,
        "last_step": last["step"] if last else None,
        "best": best["value"] if best else None,
        "best_step": best["step"] if best else None,
        "points": len(points),
        "non_finite": len(points) - len(finite),
        "diverged_at_step": diverged_at(points) if direction == "min" else None,
    }


def diverged_at(points: list[Point]) -> int | None:
    """The step from which a loss diverged, if it did: went non-finite, or ended (smoothed over a
    tenth of the run, so that noisy minibatch losses don't count) above 3× its lowest value —
    the step after the last one still within 2× of that low."""
    finite: list[Point] = []
    for point in points:
        value = point["value"]
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return _climb_start(finite) or int(point["step"])
        finite.append(point)
    return _climb_start(finite)


def _climb_start(points: list[Point]) -> int | None:
    if not points:
        return None
    window = max(1, len(points) // 10)
    values = [float(p["value"]) for p in points]
    smooth = [sum(values[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(values))]
    low = min(smooth)
    if low <= 0 or smooth[-1] <= 3 * low or smooth[-1] - low <= 1e-3:
        return None
    last_good = max(i for i, value in enumerate(smooth) if value <= 2 * low)
    return int(points[last_good + 1]["step"])


def _at_common_step(a: list[Point], b: list[Point]) -> dict[str, Any] | None:
    by_step_b = {p["step"]: p["value"] for p in b}
    common = [p for p in a if p["step"] in by_step_b]
    if not common:
        return None
    point = common[-1]
    return {"step": point["step"], "a": point["value"], "b": by_step_b[point["step"]]}


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


def compare_metrics(history_a: dict[str, list[Point]], history_b: dict[str, list[Point]]) -> list[dict[str, Any]]:
    """One entry per metric of either run; results (accuracy, loss...) first, biggest relative change first."""
    entries: list[dict[str, Any]] = []
    for key in sorted(set(history_a) | set(history_b)):
        points_a, points_b = history_a.get(key, []), history_b.get(key, [])
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


def overfitting_gap(history: dict[str, list[Point]]) -> dict[str, Any] | None:
    """The last validation loss minus the last training loss, when the run logged both."""
    train = next((k for k in history if "loss" in k.lower() and "train" in k.lower()), None)
    valid = next((k for k in history if "loss" in k.lower() and ("val" in k.lower() or "test" in k.lower())), None)
    if not train or not valid or not history[train] or not history[valid]:
        return None
    t, v = history[train][-1]["value"], history[valid][-1]["value"]
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in (t, v)):
        return None
    return {"train": train, "validation": valid, "gap": v - t}

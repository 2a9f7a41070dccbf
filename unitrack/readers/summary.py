"""Building a ``RunView`` record from what a backend stores: the same shape as ``RunRecord.to_dict()``."""

from __future__ import annotations

from typing import Any

from unitrack.readers import Point


def series_summary(points: list[Point]) -> dict[str, Any]:
    """last / step / min / max / mean / count of one metric's points (NaN is never min or max)."""
    finite = [p["value"] for p in points if p["value"] == p["value"]]
    last = points[-1] if points else {}
    return {
        "last": last.get("value"),
        "step": last.get("step"),
        "time": last.get("time"),
        "count": len(points),
        "min": min(finite) if finite else None,
        "max": max(finite) if finite else None,
        "mean": sum(finite) / len(finite) if finite else None,
    }


def make_record(
    *,
    run_id: str,
    name: str,
    experiment: str,
    status: str,
    history: dict[str, list[Point]],
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    message: str | None = None,
    start_time: float | None = None,
    end_time: float | None = None,
    info: dict[str, Any] | None = None,
    path: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    summary = {key: series_summary(points) for key, points in history.items() if points}
    duration = end_time - start_time if start_time is not None and end_time is not None else None
    return {
        "run_id": run_id,
        "name": name,
        "experiment": experiment,
        "status": status,
        "message": message,
        "tags": dict(tags or {}),
        "params": dict(params or {}),
        "metrics": {key: s["last"] for key, s in summary.items()},
        "metric_summary": summary,
        "system": {},
        "start_time": start_time,
        "end_time": end_time,
        "duration": duration,
        "info": dict(info or {}),
        "path": path,
        "error": error,
    }


def split_system(history: dict[str, list[Point]]) -> tuple[dict[str, list[Point]], list[Point]]:
    """``system/...`` series apart from the metrics, as ``[{time, rank, values}]`` samples."""
    metrics: dict[str, list[Point]] = {}
    samples: dict[float, dict[str, Any]] = {}
    for key, points in history.items():
        if not key.startswith("system/"):
            metrics[key] = points
            continue
        for point in points:
            samples.setdefault(point["time"], {})[key] = point["value"]
    system = [{"time": when, "rank": None, "values": values} for when, values in sorted(samples.items())]
    return metrics, system


def parse_param(text: str) -> Any:
    """A parameter stored as text back as the number, bool or list it was, where it reads as one."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text

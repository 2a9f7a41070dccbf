"""``RunView``: one run as every reader sees it — the CLI, ``compare`` / ``explain``, the dashboard, a notebook.

A view is cheap to make: a run listed by :func:`unitrack.runs` is built from the store's index
alone, and the rest (``run.json``, the environment, the checkpoints, the metric history) is read
the first time it is asked for. Curves come from a :class:`Series` source: the run's columnar
history for a local run (memory-mapped numpy arrays, no JSON parsed), the points a backend's own
reader returned otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from unitrack.store.layout import RunPaths

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Point = dict[str, Any]


class Series(Protocol):
    """Where a run's metric points come from (every point of a key, logged order, superseded points removed)."""

    def names(self) -> list[str]: ...

    def arrays(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps int64, values float64, times float64)`` of ``key``; KeyError when the run has no such key."""
        ...

    def points(self) -> dict[str, list[Point]]:
        """``{key: [{step, time, value}]}``: the JSON shape ``export`` prints."""
        ...

    def int_valued(self, key: str) -> bool:
        """True when every value of ``key`` was logged as an int."""
        ...


class PointSeries:
    """A :class:`Series` over points already in memory (what a backend's reader returns)."""

    def __init__(self, history: dict[str, list[Point]]) -> None:
        self._history = history
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def names(self) -> list[str]:
        return list(self._history)

    def arrays(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cached = self._arrays.get(key)
        if cached is None:
            cached = self._arrays[key] = self._convert(self._history[key])
        return cached

    @staticmethod
    def _convert(points: list[Point]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import numpy as np

        steps = np.fromiter((int(p["step"]) for p in points), dtype=np.int64, count=len(points))
        values = np.fromiter((float(p["value"]) for p in points), dtype=np.float64, count=len(points))
        times = np.fromiter((float(p["time"] or 0.0) for p in points), dtype=np.float64, count=len(points))
        return steps, values, times

    def points(self) -> dict[str, list[Point]]:
        return self._history

    def int_valued(self, key: str) -> bool:
        return all(type(p["value"]) is int for p in self._history.get(key, []))


class RunView:
    """One run, read-only, wherever it was recorded (the local store, MLflow, a W&B run directory,
    a TensorBoard log dir).

    Identity and results, read from the store's index for a listed run::

        run.run_id, run.name, run.experiment, run.status, run.message, run.error (a failed run's why)
        run.params          {flattened key: value}          e.g. {"optimizer/lr": 0.001}
        run.tags            {key: value}
        run.metric_keys     sorted metric names
        run.summary         {key: {"last", "min", "max", "step", "count", ...}}  (NaN is never min / max)
        run.start_time, run.end_time, run.duration           seconds since the epoch / seconds

    Curves, as numpy arrays (a local run's are memory-mapped from its columnar history)::

        steps, values = run.history("val/loss")   # int64, float64; every point in logged order
        run.curves()                              # {key: (steps, values)} of every metric
        run.history("val/loss", with_time=True)   # (steps, values, times)
        run.to_pandas()                           # long frame: key, step, time, value (pandas needed)

    What ``show --json`` has, for tools that want the rest of the run::

        run.git, run.environment, run.command, run.host, run.config_hash, run.info
        run.checkpoints     [{name, path, epoch, step, metrics, is_best, sha256, ...}]
        run.artifacts       [{name, path, size, sha256}]
        run.delivery        {backend: {delivered_seq, owed, in_sync, last_error, ...}}
        run.system_history  [{time, rank, values}]
        run.path            the run folder (None for a remote run); run.source: local / mlflow / wandb / tensorboard
        run.to_dict()       exactly what ``unitrack show RUN --json`` prints (with_history=True: ``export``)

    A view reflects the run when it was read; read it again (``unitrack.open_run``) to see a
    running run's newer points. NaN and ±inf come back as float NaN / inf. Steps may go back
    (a loop that resets ``step`` every epoch): every point is kept, in the order it was logged;
    points a resumed run rewound past are removed.
    """

    def __init__(
        self,
        record: dict[str, Any],
        metric_history: dict[str, list[Point]] | None = None,
        system_history: list[Point] | None = None,
        artifacts: list[Point] | None = None,
        source: str = "local",
        path: Path | None = None,
        *,
        series: Series | None = None,
        details: Callable[[], RunDetails] | None = None,
    ) -> None:
        self._record = record
        self._series = series if series is not None else (PointSeries(metric_history) if metric_history is not None else None)
        self._system_history = system_history
        self._artifacts = artifacts
        self._details = details
        self.source = source
        self.path = path if path is None or isinstance(path, Path) else Path(path)
        self.listing: dict[str, Any] | None = None  # the run's ``ls --json`` entry, when it was listed

    def __repr__(self) -> str:
        return f"RunView({self.run_id!r}, name={self.name!r}, status={self.status!r}, source={self.source!r})"

    # --- identity and results (from the listing itself) ------------------------------------------

    @property
    def run_id(self) -> str:
        return str(self._record.get("run_id") or "")

    @property
    def name(self) -> str:
        return str(self._record.get("name") or "")

    @property
    def experiment(self) -> str:
        return str(self._record.get("experiment") or "")

    @property
    def status(self) -> str:
        """running, completed, failed, interrupted or crashed (a process that died without finishing)."""
        return str(self._record.get("status") or "")

    @property
    def message(self) -> str | None:
        return self._record.get("message")

    @property
    def error(self) -> dict[str, Any] | None:
        """Why a failed run failed: ``{type, message, traceback, where}`` (redacted), else None."""
        error = self.record.get("error")
        return error if isinstance(error, dict) else None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._record.get("params") or {})

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._record.get("tags") or {})

    @property
    def summary(self) -> dict[str, dict[str, Any]]:
        """Per metric: ``last``, ``min``, ``max`` (finite values only), ``step`` of the last, ``count``."""
        return {key: dict(value) for key, value in (self._record.get("metric_summary") or {}).items()}

    @property
    def metric_keys(self) -> list[str]:
        """Sorted metric names (from the summary until the curves are read, then from the curves too)."""
        keys = set(self._record.get("metric_summary") or {})
        if self._series is not None:
            keys |= set(self._series.names())
        return sorted(keys)

    @property
    def start_time(self) -> float | None:
        return self._record.get("start_time")

    @property
    def end_time(self) -> float | None:
        return self._record.get("end_time")

    @property
    def duration(self) -> float | None:
        return self.record.get("duration")

    # --- the rest of the run (read on first use) -------------------------------------------------

    @property
    def record(self) -> dict[str, Any]:
        """The run as ``RunRecord.to_dict()`` shapes it (run_id, name, ..., info, path)."""
        if self.listing is not None:  # listed from the index: the run's own files hold the rest
            self._load_details()
        return self._record

    @property
    def info(self) -> dict[str, Any]:
        """Everything ``run.json`` holds besides the tags (git, command, host, pid, backends, ...)."""
        return dict(self.record.get("info") or {})

    @property
    def git(self) -> dict[str, Any]:
        """``{commit, branch, dirty, ...}`` as captured at the start, or {}."""
        return dict(self.info.get("git") or {})

    @property
    def command(self) -> list[str]:
        return list(self.info.get("command") or [])

    @property
    def host(self) -> str | None:
        return self.info.get("host")

    @property
    def config_hash(self) -> str | None:
        return self.info.get("config_hash")

    @property
    def environment(self) -> dict[str, Any]:
        """Python, OS, packages, torch / CUDA, GPUs (``environment.json``), or {} when not recorded."""
        if self.path is not None:
            try:
                data = json.loads(RunPaths(self.path).environment_json.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    return data
            except (OSError, ValueError):
                pass
        return dict(self.info.get("environment") or {})

    @property
    def checkpoints(self) -> list[dict[str, Any]]:
        """The kept checkpoints, oldest first, as the run's registry lists them (``is_best`` marked)."""
        if self.path is None or not RunPaths(self.path).checkpoint_registry.exists():
            return []  # no registry: the checkpoint package is not imported
        from unitrack.checkpoint.catalog import run_checkpoints

        return [{**info.to_dict(), "is_best": info.is_best} for info in run_checkpoints(self.path)]

    @property
    def artifacts(self) -> list[Point]:
        """``[{name, path, size, sha256}]``, the latest entry per name."""
        self._load_details()
        return list(self._artifacts or [])

    @property
    def delivery(self) -> dict[str, dict[str, Any]]:
        """Per remote backend of a local run: what it acknowledged, what it still owes, its last error."""
        return _delivery(self.path) if self.source == "local" and self.path is not None else {}

    @property
    def system_history(self) -> list[Point]:
        """System-monitor samples, ``[{time, rank, values}]``."""
        self._load_details()
        return list(self._system_history or [])

    # --- curves -----------------------------------------------------------------------------------

    def history(self, key: str, *, with_time: bool = False) -> Any:
        """``(steps, values)`` of metric ``key`` as numpy arrays (int64, float64), every point in the
        order it was logged, superseded points removed; ``(steps, values, times)`` with ``with_time``.

        Raises ``KeyError`` naming the key (and the run's keys) when the run has no such metric.
        """
        try:
            steps, values, times = self._load_series().arrays(key)
        except KeyError:
            keys = ", ".join(self.metric_keys[:20]) or "none"
            raise KeyError(f"run {self.run_id} has no metric {key!r} (its metrics: {keys})") from None
        return (steps, values, times) if with_time else (steps, values)

    def curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{key: (steps, values)}`` of every metric, in the order the keys were first logged."""
        series = self._load_series()
        return {key: series.arrays(key)[:2] for key in series.names()}

    def int_valued(self, key: str) -> bool:
        """True when every value of ``key`` was logged as an int (``export`` prints them as ints)."""
        return self._load_series().int_valued(key)

    @property
    def metric_history(self) -> dict[str, list[Point]]:
        """Every point as ``{key: [{step, time, value}]}`` (the shape ``export --json`` prints)."""
        return self._load_series().points()

    def to_pandas(self) -> pd.DataFrame:
        """Every metric point as a long DataFrame: columns ``key``, ``step``, ``time``, ``value``
        (pivot it for a wide one). Needs pandas, which unitrack does not depend on."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("RunView.to_pandas() needs pandas: pip install pandas") from None
        import numpy as np

        frames = []
        for key in self._load_series().names():
            steps, values, times = self._load_series().arrays(key)
            frames.append(pd.DataFrame({"key": key, "step": steps, "time": times, "value": values}))
        if not frames:
            return pd.DataFrame({"key": [], "step": np.zeros(0, np.int64), "time": [], "value": []})
        return pd.concat(frames, ignore_index=True)

    def to_dict(self, with_history: bool = False) -> dict[str, Any]:
        """What ``unitrack show RUN --json`` prints; with the metric and system history, ``export --json``."""
        data = {**self.record, "artifacts": self.artifacts, "source": self.source}
        data["delivery"] = self.delivery
        if with_history:
            data["metric_history"] = self.metric_history
            data["system_history"] = self.system_history
        return data

    # --- loading ----------------------------------------------------------------------------------

    def _load_details(self) -> None:
        if self._details is None:
            return
        loader, self._details = self._details, None
        details = loader()
        self._record = details.record
        self._series = details.series
        self._system_history = details.system_history
        self._artifacts = details.artifacts

    def _load_series(self) -> Series:
        self._load_details()
        if self._series is None:
            self._series = PointSeries({})
        return self._series


class RunDetails:
    """What a lazily loaded view fills itself with."""

    def __init__(self, record: dict[str, Any], series: Series, system_history: list[Point], artifacts: list[Point]) -> None:
        self.record = record
        self.series = series
        self.system_history = system_history
        self.artifacts = artifacts


def _delivery(path: Path) -> dict[str, dict[str, Any]]:
    from unitrack.store.history import delivery_status
    from unitrack.store.layout import RunPaths

    return delivery_status(RunPaths(path))


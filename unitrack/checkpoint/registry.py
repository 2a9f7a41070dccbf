"""The run's checkpoint registry (``RunPaths.checkpoint_registry``) and the retention policies.

The registry lists every kept checkpoint with its epoch, step, metrics, score and manifest
checksum. It is rewritten atomically after each change and read back by a resumed run, so
"the best k" and "the last N" survive restarts. Retention is a union of small policies; the
best, the last and any checkpoint a run resumed from are always kept.

:func:`read_registry` is the one reader of that file: the tracker's :class:`Registry`, the
catalog of tools that hold no tracker (``clean``, ``rollback``, ``delta``, the dashboard),
``verify`` and restoring from a store all read it through there.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unitrack.nonfinite import encode_number
from unitrack.store.fsio import atomic_write_json, read_json
from unitrack.store.layout import RunPaths

REGISTRY_FORMAT = 1


@dataclass
class CheckpointInfo:
    """One checkpoint: where it is, what training state it holds, and what it is verified against.

    ``sha256`` is the SHA-256 of its ``manifest.json`` (which holds those of every file and
    tensor); for an asynchronous save it is filled in once the write has finished. ``url`` is set
    for a checkpoint in object storage (``s3://bucket/prefix/run/name``); its ``path`` is then only
    the local folder it was staged in.
    """

    name: str
    path: Path
    epoch: int
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    is_best: bool = False
    marked_best: bool | None = None
    score: float | None = None
    sha256: str | None = None
    time: float = 0.0
    url: str | None = None

    @property
    def location(self) -> str:
        """Where the checkpoint lives: its URL in object storage, else its folder."""
        return self.url or str(self.path)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["metrics"] = {k: encode_number(v) for k, v in self.metrics.items()}
        data["score"] = None if self.score is None else encode_number(self.score)
        data.pop("is_best")
        if self.url is None:
            data.pop("url")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointInfo:
        return cls(
            name=data["name"],
            path=Path(data["path"]),
            epoch=int(data["epoch"]),
            step=int(data["step"]),
            metrics={k: _number(v) for k, v in (data.get("metrics") or {}).items()},
            marked_best=data.get("marked_best"),
            score=_number(data.get("score")),
            sha256=data.get("sha256"),
            time=float(data.get("time") or 0.0),
            url=data.get("url"),
        )

    def __fspath__(self) -> str:
        return str(self.path)


def _number(value: Any) -> float:
    """A stored metric as a float: "nan"/"inf" (how non-finite values are stored) and null read as NaN/inf."""
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class RetentionPolicy:
    """Which checkpoints to keep. With no ``keep_*`` set every checkpoint is kept (up to ``max_checkpoints``)."""

    monitor: str | None = None
    mode: str = "min"
    keep_last: int | None = None
    keep_best: int | None = None
    keep_every_n_steps: int | None = None
    max_checkpoints: int | None = None

    def score(self, metrics: dict[str, float]) -> float | None:
        if self.monitor is None:
            return None
        value = metrics.get(self.monitor)
        return math.nan if value is None else float(value)

    def _rank(self, info: CheckpointInfo) -> tuple[bool, float]:
        """Sort key, best first: NaN (or a missing metric) is the worst score."""
        score = info.score
        if score is None or math.isnan(score):
            return (True, 0.0)
        return (False, score if self.mode == "min" else -score)

    def best(self, entries: list[CheckpointInfo]) -> CheckpointInfo | None:
        if self.monitor is not None:
            ranked = sorted(entries, key=self._rank)  # stable: the earliest of equal scores wins
            return ranked[0] if ranked else None
        marked = [e for e in entries if e.marked_best]
        return marked[-1] if marked else None

    def best_k(self, entries: list[CheckpointInfo], k: int) -> list[CheckpointInfo]:
        if self.monitor is not None:
            return sorted(entries, key=self._rank)[:k]
        return [e for e in entries if e.marked_best][-k:]

    def kept(self, entries: list[CheckpointInfo], protected: set[str]) -> set[str]:
        """Names of ``entries`` (oldest first) to keep."""
        names = [e.name for e in entries]
        if self.keep_last is None and self.keep_best is None and self.keep_every_n_steps is None:
            keep = set(names)
        else:
            keep = set(names[-self.keep_last :]) if self.keep_last else set()
            if self.keep_best:
                keep |= {e.name for e in self.best_k(entries, self.keep_best)}
            if self.keep_every_n_steps:
                keep |= {e.name for e in entries if e.step % self.keep_every_n_steps == 0}
        keep |= protected & set(names)
        if self.max_checkpoints is not None:
            for name in names:  # oldest first
                if len(keep) <= self.max_checkpoints:
                    break
                if name in keep and name not in protected:
                    keep.discard(name)
        return keep


def fallback_order(newest_first: list[Any], best: Any, which: str) -> list[Any]:
    """What to try for "best" (the best, then newest first) or "last" (newest first): past a damaged
    checkpoint to the next intact one. Shared by the tracker and by restoring from anywhere."""
    if which == "best":
        return [] if best is None else [best, *(e for e in newest_first if e is not best)]
    return newest_first


@dataclass(frozen=True)
class RegistryFile:
    """A run's registry file as read (``data`` is {} when there is none)."""

    path: Path
    data: dict[str, Any]

    @property
    def best(self) -> str | None:
        """The name of the checkpoint the file records as best."""
        return self.data.get("best")

    @property
    def checkpoints(self) -> list[CheckpointInfo]:
        """The listed checkpoints, oldest first; the one recorded as best has ``is_best`` set."""
        infos = [CheckpointInfo.from_dict(entry) for entry in self.data.get("checkpoints", [])]
        for info in infos:
            info.is_best = info.name == self.best
        return infos

    @property
    def resumed_from(self) -> list[str]:
        return list(self.data.get("resumed_from", []))


def read_registry(run_dir: Path) -> RegistryFile:
    """The registry of the run in ``run_dir``."""
    path = RunPaths(Path(run_dir)).checkpoint_registry
    data = read_json(path, {})
    return RegistryFile(path, data if isinstance(data, dict) else {})


class Registry:
    """The persisted list of a run's kept checkpoints, oldest first; thread-safe."""

    def __init__(self, run_dir: Path, policy: RetentionPolicy) -> None:
        stored = read_registry(run_dir)
        self.path = stored.path
        self.policy = policy
        self.lock = threading.RLock()
        self.entries: list[CheckpointInfo] = stored.checkpoints
        self.resumed_from: list[str] = stored.resumed_from
        for entry in self.entries:  # a policy changed between runs re-scores what was kept
            if policy.monitor is not None:
                entry.score = policy.score(entry.metrics)
        self._mark_best()

    def save(self) -> None:
        with self.lock:
            best = self.best()
            atomic_write_json(
                self.path,
                {
                    "format": REGISTRY_FORMAT,
                    "monitor": self.policy.monitor,
                    "mode": self.policy.mode,
                    "best": best.name if best is not None else None,
                    "resumed_from": self.resumed_from,
                    "checkpoints": [e.to_dict() for e in self.entries],
                },
            )

    def best(self) -> CheckpointInfo | None:
        with self.lock:
            return self.policy.best(self.entries)

    def last(self) -> CheckpointInfo | None:
        with self.lock:
            return self.entries[-1] if self.entries else None

    def find(self, name: str) -> CheckpointInfo | None:
        with self.lock:
            return next((e for e in self.entries if e.name == name), None)

    def names(self) -> set[str]:
        with self.lock:
            return {e.name for e in self.entries}

    def add(self, info: CheckpointInfo) -> None:
        with self.lock:
            self.entries.append(info)
            self.entries.sort(key=lambda e: e.time)
            self._mark_best()
            self.save()

    def to_evict(self) -> list[CheckpointInfo]:
        """The checkpoints the policies no longer keep."""
        with self.lock:
            protected = set(self.resumed_from)
            for keep in (self.best(), self.last()):
                if keep is not None:
                    protected.add(keep.name)
            kept = self.policy.kept(self.entries, protected)
            return [e for e in self.entries if e.name not in kept]

    def remove(self, name: str) -> None:
        with self.lock:
            self.entries = [e for e in self.entries if e.name != name]
            self._mark_best()
            self.save()

    def _mark_best(self) -> None:
        best = self.policy.best(self.entries)
        for entry in self.entries:
            entry.is_best = entry is best

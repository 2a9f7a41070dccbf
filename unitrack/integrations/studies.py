"""A hyperparameter study's record in the store: direction, sampler, pruner, trials, the best one.

Several workers (threads, processes, machines sharing the store) update one study's record as
their trials finish; each update is a locked read-merge-write of ``<store>/studies/<name>.json``,
so no worker's trial is lost to another's write.
"""

from __future__ import annotations

import fcntl
import math
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.store.fsio import atomic_write_json, read_json
from unitrack.store.layout import StoreLayout

if TYPE_CHECKING:
    import optuna


def trial_entry(run_id: str | None, status: str, value: float | None) -> dict[str, Any]:
    """One trial as the record keeps it (a ``None`` run id keeps the one already recorded)."""
    return {"run_id": run_id, "status": status, "value": value}


@dataclass
class StudyRecord:
    """The record of one study in one store; ``update`` merges trials and recomputes the best."""

    path: Path
    name: str
    direction: str
    sampler: str
    pruner: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def for_study(cls, store_dir: str | Path, study: optuna.Study) -> StudyRecord:
        directions = [d.name.lower() for d in study.directions]
        return cls(
            path=StoreLayout(Path(store_dir)).study(study.study_name),
            name=study.study_name,
            direction=",".join(directions),
            sampler=type(study.sampler).__name__,
            pruner=type(study.pruner).__name__ if hasattr(study, "pruner") else "NopPruner",
        )

    def update(self, trials: Mapping[int, dict[str, Any]], study: optuna.Study | None = None) -> dict[str, Any]:
        """Merge ``trials`` ({number: entry}) into the record; return the record as written."""
        with self._lock, _file_lock(self.path):
            data = read_json(self.path, {}) or {}
            known: dict[str, dict[str, Any]] = data.get("trials", {})
            for number, entry in trials.items():
                old = known.get(str(number), {})
                merged = {**old, **{k: v for k, v in entry.items() if v is not None}}
                if entry.get("status"):
                    merged["status"] = entry["status"]
                known[str(number)] = merged
            data.update(
                study=self.name,
                direction=self.direction,
                sampler=self.sampler,
                pruner=self.pruner,
                trials=dict(sorted(known.items(), key=lambda kv: int(kv[0]))),
                updated=time.time(),
            )
            data.update(self._best(known))
            if study is not None:
                data["n_trials"] = len(study.get_trials(deepcopy=False))
            atomic_write_json(self.path, data)
            return data

    def _best(self, trials: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        """The best completed trial under the study's direction (single-objective studies)."""
        if "," in self.direction:
            return {"best_trial": None, "best_value": None, "best_run_id": None}
        done = [
            (float(t["value"]), int(n), t.get("run_id"))
            for n, t in trials.items()
            if t.get("status") == "completed" and t.get("value") is not None and math.isfinite(float(t["value"]))
        ]
        if not done:
            return {"best_trial": None, "best_value": None, "best_run_id": None}
        sign = -1.0 if self.direction == "maximize" else 1.0
        value, number, run_id = min(done, key=lambda item: (sign * item[0], item[1]))  # ties: the earlier trial
        return {"best_trial": number, "best_value": value, "best_run_id": run_id}


def read_study(name: str, store_dir: str | Path) -> dict[str, Any] | None:
    """A study's record from the store, or None when the store has none of that name."""
    data = read_json(StoreLayout(Path(store_dir)).study(name))
    return data if isinstance(data, dict) else None


def list_studies(store_dir: str | Path) -> list[dict[str, Any]]:
    """Every study recorded in the store, the most recently updated first."""
    folder = StoreLayout(Path(store_dir)).studies
    records = [read_json(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted((r for r in records if isinstance(r, dict)), key=lambda r: -float(r.get("updated") or 0))


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path``, shared by every process that writes the record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

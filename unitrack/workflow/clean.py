"""``unitrack clean``: remove old or failed runs, or only their non-best checkpoints and snapshots.

Only what unitrack created is deleted: run folders of the store, checkpoint folders its journal
records (and that hold a checkpoint manifest), and weight snapshots through their own module.
Every deletion leaves one JSON line in ``<store>/audit.jsonl``.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitrack.checkpoint.catalog import best_checkpoint, forget_checkpoints, run_checkpoints
from unitrack.checkpoint.registry import CheckpointInfo
from unitrack.events import CHECKPOINT_REMOVED, UNNUMBERED, RecordEvent
from unitrack.store.runs import RunStore
from unitrack.workflow.journal_append import append_to_run

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_FAILED = ("failed", "crashed")


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``2w``, ``90m`` or ``45s`` in seconds."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(f"--older-than {text!r}: write a number and a unit, e.g. 30d, 12h, 2w, 90m")
    return float(match.group(1)) * _AGE_SECONDS[match.group(2)]


@dataclass
class Removal:
    """One thing ``clean`` removes: a whole run, or one checkpoint / the snapshots of a run."""

    run_id: str
    what: str  # "run", "checkpoint", "snapshots"
    path: Path
    bytes: int
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "what": self.what, "name": self.name, "path": str(self.path), "bytes": self.bytes}


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def select_runs(
    store: RunStore,
    keep_last: int | None = None,
    older_than: str | None = None,
    failed: bool = False,
    statuses: Sequence[str] = (),
) -> list[str]:
    """Ids of the finished runs every given criterion picks (newest runs first)."""
    if keep_last is None and older_than is None and not failed and not statuses:
        raise ValueError("say what to clean: --keep-last N, --older-than AGE, --failed or --status S")
    rows = sorted(store.rows(), key=lambda r: r.run_id, reverse=True)
    kept = {r.run_id for r in rows[:keep_last]} if keep_last is not None else set()
    cutoff = time.time() - parse_age(older_than) if older_than else None
    chosen = []
    for row in rows:
        status = row.attributes.get("status")
        if status == "running" or row.run_id in kept:
            continue
        if cutoff is not None and float(row.attributes.get("start_time") or 0) > cutoff:
            continue
        if failed and status not in _FAILED:
            continue
        if statuses and status not in statuses:
            continue
        chosen.append(row.run_id)
    return chosen


def _snapshot_removal(store: RunStore, run_id: str) -> Removal | None:
    """The run's weight snapshot manifests (its ``snapshots/`` folder), if it has any."""
    path = store.layout.run(run_id).snapshots
    return Removal(run_id, "snapshots", path, folder_size(path)) if path.is_dir() else None


def _release_snapshots(store: RunStore, run_id: str) -> int:
    """Let the weights module drop the run's snapshots and the objects only they used; bytes freed."""
    from unitrack.weights.snapshots import remove_run_snapshots

    return int(remove_run_snapshots(store.root, run_id)[1])


def _checkpoint_removal(run_id: str, checkpoint: CheckpointInfo) -> Removal:
    return Removal(run_id, "checkpoint", checkpoint.path, folder_size(checkpoint.path), checkpoint.name)


def plan_clean(store: RunStore, run_ids: list[str], checkpoints_only: bool = False) -> list[Removal]:
    """What cleaning ``run_ids`` removes, with sizes: nothing is deleted here."""
    plan: list[Removal] = []
    for run_id in run_ids:
        paths = store.layout.run(run_id)
        checkpoints = run_checkpoints(paths.root)
        if checkpoints_only:
            best = best_checkpoint(paths.root)
            for checkpoint in checkpoints:
                if best is None or checkpoint.name != best.name:
                    plan.append(_checkpoint_removal(run_id, checkpoint))
        else:
            plan.append(Removal(run_id, "run", paths.root, folder_size(paths.root)))
            for checkpoint in checkpoints:  # checkpoints kept outside the run folder (checkpoint_dir)
                if paths.root not in checkpoint.path.parents:
                    plan.append(_checkpoint_removal(run_id, checkpoint))
        snapshots = _snapshot_removal(store, run_id) if checkpoints_only else None
        if snapshots is not None:
            plan.append(snapshots)
    return plan


def _audit(store: RunStore, removal: Removal) -> None:
    line = {"time": time.time(), "user": getpass.getuser(), "action": f"remove_{removal.what}", **removal.to_dict()}
    with open(store.layout.audit, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def apply_clean(store: RunStore, plan: list[Removal]) -> int:
    """Delete what ``plan`` lists, audit each deletion, and return the bytes freed."""
    freed = 0
    removed_checkpoints: dict[str, list[str]] = {}
    for removal in plan:
        if removal.path.exists():
            shutil.rmtree(removal.path)
        if removal.what in ("run", "snapshots"):
            freed += _release_snapshots(store, removal.run_id)
        if removal.what == "run":
            store.index.delete({removal.run_id})
        elif removal.what == "checkpoint":
            removed_checkpoints.setdefault(removal.run_id, []).append(str(removal.name))
        freed += removal.bytes
        _audit(store, removal)
    for run_id, names in removed_checkpoints.items():
        paths = store.layout.run(run_id)
        if paths.run_json.exists():
            forget_checkpoints(paths.root, set(names))
            events = [RecordEvent(UNNUMBERED, time.time(), CHECKPOINT_REMOVED, {"name": n}) for n in names]
            append_to_run(store, paths, events)
    return freed

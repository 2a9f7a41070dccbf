"""A run's checkpoints, as its journal records them (``checkpoint`` / ``checkpoint_removed`` events).

The one place the workflow commands learn about checkpoints; it reads the shared event contract
of docs/architecture.md, so it works before and after the checkpoint registry lands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unitrack.store.journal import iter_journal
from unitrack.store.layout import RunPaths

MANIFEST = "manifest.json"  # written last by save_checkpoint: a folder without it is not a finished checkpoint


def list_checkpoints(paths: RunPaths) -> list[dict[str, Any]]:
    """The run's checkpoints still present, oldest first: ``{name, path, epoch, step, metrics, is_best, aliases}``."""
    found: dict[str, dict[str, Any]] = {}
    for record in iter_journal(paths.events):
        kind = record.get("kind")
        if kind == "checkpoint" and record.get("name"):
            found[str(record["name"])] = {k: v for k, v in record.items() if k not in ("seq", "kind", "time")}
        elif kind == "checkpoint_removed":
            found.pop(str(record.get("name")), None)
    return [c for c in found.values() if c.get("path") and Path(c["path"]).is_dir()]


def best_checkpoint(paths: RunPaths) -> dict[str, Any] | None:
    """The checkpoint marked best most recently, else the last one."""
    checkpoints = list_checkpoints(paths)
    best = [c for c in checkpoints if c.get("is_best") or "best" in (c.get("aliases") or [])]
    if best:
        return best[-1]
    return checkpoints[-1] if checkpoints else None


def is_unitrack_checkpoint(folder: Path) -> bool:
    """True for a folder ``save_checkpoint`` wrote (it holds the manifest), the only kind ``clean`` deletes."""
    return (folder / MANIFEST).is_file()

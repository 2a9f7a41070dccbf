"""A run's checkpoints as its registry lists them, for tools that hold no tracker.

``delta``, ``compare``, ``clean`` and ``rollback`` read finished runs: they go through here, never
through the journal or the folder layout, so compression, encryption and ``checkpoint_dir``
stay the checkpoint package's business.
"""

from __future__ import annotations

from pathlib import Path

from unitrack.checkpoint.registry import CheckpointInfo, read_registry
from unitrack.checkpoint.storage import MANIFEST, SHARDED_LAYOUT
from unitrack.store.fsio import atomic_write_json, read_json


def run_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """The run's kept checkpoints whose folder is still there, oldest first, the best one marked."""
    return [info for info in read_registry(run_dir).checkpoints if is_unitrack_checkpoint(info.path)]


def best_checkpoint(run_dir: Path) -> CheckpointInfo | None:
    """The registry's best checkpoint, else its last one."""
    checkpoints = run_checkpoints(run_dir)
    best = [c for c in checkpoints if c.is_best]
    return best[-1] if best else (checkpoints[-1] if checkpoints else None)


def is_unitrack_checkpoint(folder: Path) -> bool:
    """True for a folder a save finished (it holds the manifest, written last): the only kind ``clean`` deletes."""
    return (Path(folder) / MANIFEST).is_file()


def is_sharded_checkpoint(folder: Path) -> bool:
    """True for a finished checkpoint whose manifest says it holds DCP shards (see ``sharded``)."""
    manifest = read_json(Path(folder) / MANIFEST, None)
    return isinstance(manifest, dict) and manifest.get("layout") == SHARDED_LAYOUT


def forget_checkpoints(run_dir: Path, names: set[str]) -> None:
    """Drop ``names`` from the registry after their folders were deleted (by ``clean``)."""
    registry = read_registry(run_dir)
    if not registry.data:
        return
    data = dict(registry.data)
    data["checkpoints"] = [e for e in data.get("checkpoints", []) if e.get("name") not in names]
    if data.get("best") in names:
        data["best"] = None
    atomic_write_json(registry.path, data)


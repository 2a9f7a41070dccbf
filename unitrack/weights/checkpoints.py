"""A run's checkpoints, read from its journal (issue 4 writes them; this is the one place that reads them).

The ``checkpoint`` events name each checkpoint's folder (holding ``model.safetensors``);
``checkpoint_removed`` events retire them. Only checkpoints whose weights file is still on disk
are returned. Re-point this module when the checkpoint registry offers a reader of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unitrack.store.journal import iter_journal
from unitrack.store.layout import RunPaths

MODEL_FILE = "model.safetensors"


@dataclass(frozen=True)
class CheckpointRef:
    name: str
    weights: Path
    step: int
    epoch: int | None
    is_best: bool
    seq: int


def run_checkpoints(paths: RunPaths) -> list[CheckpointRef]:
    """The run's live checkpoints in the order they were saved."""
    found: dict[str, CheckpointRef] = {}
    best: str | None = None
    for record in iter_journal(paths.events):
        kind = record.get("kind")
        if kind == "checkpoint":
            name = str(record.get("name"))
            aliases = record.get("aliases") or []
            is_best = bool(record.get("is_best")) or "best" in aliases
            found[name] = CheckpointRef(
                name=name,
                weights=Path(str(record.get("path"))) / MODEL_FILE,
                step=int(record.get("step") or 0),
                epoch=record.get("epoch"),
                is_best=is_best,
                seq=int(record.get("seq") or 0),
            )
            best = name if is_best else best
        elif kind == "checkpoint_removed":
            found.pop(str(record.get("name")), None)
    live = [ref for ref in found.values() if ref.weights.exists()]
    return [CheckpointRef(r.name, r.weights, r.step, r.epoch, r.name == best, r.seq) for r in live]

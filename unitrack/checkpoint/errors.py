"""The errors of checkpointing, so a caller can tell a failed save from a damaged checkpoint."""

from __future__ import annotations

from unitrack.errors import UnitrackError


class CheckpointError(UnitrackError):
    """Base class of checkpoint errors."""


class CheckpointSaveError(CheckpointError, OSError):
    """A save that failed (full disk, no permission...); earlier checkpoints are untouched."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint whose files do not match their checksums; ``problems`` names each file and tensor."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        super().__init__(f"checkpoint {where} is damaged: " + "; ".join(problems))


class CheckpointNotFoundError(CheckpointError, LookupError):
    """No checkpoint matches what was asked for."""

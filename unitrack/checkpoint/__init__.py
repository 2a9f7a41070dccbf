"""Checkpoints: safe (atomic, checksummed, no pickle), kept by policy, restored exactly.

Importing this package does not import torch; saving and loading do.
"""

from unitrack.checkpoint.errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointSaveError,
)
from unitrack.checkpoint.registry import CheckpointInfo, RetentionPolicy

__all__ = [
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointNotFoundError",
    "CheckpointSaveError",
    "RetentionPolicy",
]

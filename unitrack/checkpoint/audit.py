"""Checking every checkpoint a run's registry lists, for ``unitrack verify`` and for other tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from unitrack.checkpoint.crypto import DEFAULT_KEY_ENV
from unitrack.checkpoint.registry import read_registry


@dataclass
class CheckpointReport:
    """The outcome of verifying one checkpoint: ``problems`` names each damaged file and tensor;
    ``algorithm`` is that of the checksums checked ("blake3", or "sha256" for checkpoints written
    before BLAKE3; None when the manifest could not be read)."""

    run_id: str
    name: str
    path: str
    problems: list[str] = field(default_factory=list)
    algorithm: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_run(run_dir: Path, key_env: str = DEFAULT_KEY_ENV) -> list[CheckpointReport]:
    """Verify every checkpoint the run's registry lists (none listed: an empty list).

    Encrypted checkpoints are decrypted with the key in ``$key_env``."""
    from unitrack.checkpoint.locations import audit_info

    reports = []
    for info in read_registry(run_dir).checkpoints:
        problems, algorithm = audit_info(info, key_env)
        reports.append(CheckpointReport(run_dir.name, info.name, info.location, problems, algorithm))
    return reports

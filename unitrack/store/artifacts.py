"""A run's ``artifacts/`` folder: files copied or written into it, hashed, and announced.

The tracker copies a logged file in before ``log_artifact`` returns (so the caller may change
or delete the original at once); hashing it and announcing it to the journal, which the
backends then mirror from, happen later on the capture thread. Every artifact event's ``path``
is relative to the run folder and its ``sha256`` is SHA-256, as the backends read it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from unitrack.events import UNNUMBERED, ArtifactEvent
from unitrack.hashing import SHA256, digest_path
from unitrack.store.layout import RunPaths


def artifact_name(name: str) -> str:
    """``name`` as a relative POSIX path inside the run; a clear error for one that would leave it."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or "\x00" in name:
        raise ValueError(f"artifact name {name!r} must be a relative path inside the run")
    return Path(*parts).as_posix()


class RunArtifacts:
    """Puts files into one run's ``artifacts/`` and announces each with an ``ArtifactEvent`` to ``emit``."""

    def __init__(self, paths: RunPaths, emit: Callable[[ArtifactEvent], None]) -> None:
        self.paths = paths
        self._emit = emit

    @property
    def folder(self) -> Path:
        return self.paths.artifacts

    def copy_in(self, path: str | os.PathLike[str], name: str | None = None) -> tuple[str, Path]:
        """Copy a file or folder in now, replacing one of the same name; return (its name, its stored path).

        It is not announced yet: the caller hands that to a background thread (:meth:`announce`).
        """
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"artifact {str(source)!r} does not exist")
        name = artifact_name(name or source.name)
        target = self.paths.artifacts / name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        return name, target

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode("utf-8"))

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write ``data`` as artifact ``name`` and announce it (on the calling thread)."""
        target = self.paths.artifacts / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.announce(name, target)

    def announce(self, name: str, target: Path) -> None:
        """Hash ``target`` (a file or folder in the run) and emit its artifact event."""
        size, digest = digest_path(target, SHA256)  # the artifact event's "sha256": kept, as backends read it
        relative = target.relative_to(self.paths.root).as_posix()
        self._emit(ArtifactEvent(UNNUMBERED, time.time(), name, relative, size, digest))

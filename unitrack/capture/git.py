"""The git state of the code a run ran: commit, branch, dirty flag and the uncommitted patch."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from unitrack.redact import redact_text

_TIMEOUT_S = 20.0


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _excluding(root: Path, ignore: Path | None) -> list[str]:
    """A pathspec for the whole tree without ``ignore`` (the store): its files are the run's, not the code's."""
    if ignore is None:
        return []
    try:
        inside = Path(ignore).resolve().relative_to(root.resolve())
    except ValueError:
        return []
    return ["--", ".", f":(exclude){inside.as_posix()}"] if inside.parts else []


def capture_git(cwd: Path | None = None, ignore: Path | None = None) -> tuple[dict[str, Any], str]:
    """The git facts of ``cwd`` and its uncommitted diff against HEAD; ``({}, "")`` outside a repository.

    ``ignore`` (the unitrack store) is left out of the dirty flag and the patch, so a store kept
    inside the repository does not make every run look dirty.
    """
    cwd = cwd or Path.cwd()
    root = _git(cwd, "rev-parse", "--show-toplevel")
    if root is None:
        return {}, ""
    info: dict[str, Any] = {"root": root.strip()}
    spec = _excluding(Path(info["root"]), ignore)
    commit = _git(cwd, "rev-parse", "HEAD")
    info["commit"] = commit.strip() if commit else None
    branch = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD")
    info["branch"] = branch.strip() if branch else None
    remote = _git(cwd, "config", "--get", "remote.origin.url")
    info["remote"] = redact_text(remote.strip()) if remote else None
    status = _git(Path(info["root"]), "status", "--porcelain", "--untracked-files=normal", *spec) or ""
    info["dirty"] = bool(status.strip())
    info["untracked"] = [line[3:] for line in status.splitlines() if line.startswith("??")]
    patch = (_git(Path(info["root"]), "diff", "HEAD", "--binary", *spec) or "") if info["commit"] else ""
    return info, patch

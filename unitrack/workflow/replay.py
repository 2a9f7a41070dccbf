"""``unitrack rerun`` and ``rollback``: a recorded run's code (commit + uncommitted patch) brought back.

``rerun`` runs the recorded command again as a new run (tag and ``run.json`` field
``rerun_of``), in place when the working tree already is the run's code, otherwise in a
temporary git worktree at the run's commit with its patch applied. ``rollback`` writes the code,
the configuration and the best checkpoint into a folder, ready to run again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitrack.capture.git import capture_git
from unitrack.checkpoint.catalog import best_checkpoint
from unitrack.errors import UnitrackError
from unitrack.redact import REDACTED
from unitrack.store.fsio import read_json
from unitrack.store.runs import RunStore
from unitrack.workflow.commit import CommitResult, run_committed

PATCH_ARTIFACT = "git.patch"


class ReplayError(UnitrackError, ValueError):
    """A run that cannot be re-run or rolled back as recorded; the message says why."""


@dataclass
class RunCode:
    """Where and how a run ran: its command, working folder and code state."""

    run_id: str
    command: list[str]
    cwd: Path
    repo_root: Path | None
    commit: str | None
    patch: str
    params: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def relative_cwd(self) -> Path:
        """The working folder inside the repository (``.`` at its top)."""
        if self.repo_root is None:
            return Path(".")
        try:
            return self.cwd.relative_to(self.repo_root)
        except ValueError:
            return Path(".")


def _git(cwd: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ReplayError(f"git {' '.join(args[:2])} failed in {cwd}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def runnable_command(command: list[str]) -> list[str]:
    """The recorded command as one to execute: a bare ``train.py`` (from ``sys.argv``) gets the interpreter."""
    if not command:
        raise ReplayError("the run recorded no command")
    if any(REDACTED in part for part in command):
        raise ReplayError("the run's command has redacted secrets in it: re-run it yourself with the real values")
    if command[0].endswith(".py"):
        return [sys.executable, *command]
    return list(command)


def load_run_code(store: RunStore, ref: str) -> RunCode:
    paths = store.resolve(ref)
    run = read_json(paths.run_json, {}) or {}
    git = run.get("git") or {}
    patch_file = paths.artifacts / PATCH_ARTIFACT
    repo_root, cwd = (Path(git["root"]) if git.get("root") else None), Path(run.get("cwd") or ".")
    if repo_root is not None and not repo_root.exists() and run.get("rerun_of"):
        # a rerun ran in a temporary worktree, gone now: its code lives in the original's repository
        original = load_run_code(store, str(run["rerun_of"]))
        repo_root, cwd = original.repo_root, original.cwd
    return RunCode(
        run_id=paths.run_id,
        command=list(run.get("command") or []),
        cwd=cwd,
        repo_root=repo_root,
        commit=git.get("commit"),
        patch=patch_file.read_text(encoding="utf-8") if patch_file.exists() else "",
        params=read_json(paths.params_json, {}) or {},
        config=dict(run.get("config") or {}),
        message=run.get("message"),
        tags={k: v for k, v in (run.get("tags") or {}).items() if k != "rerun_of"},
    )


def tree_matches(code: RunCode, store: RunStore) -> bool:
    """True when the repository's working tree is the run's code (same commit, same uncommitted patch)."""
    if code.repo_root is None or code.commit is None or not code.repo_root.exists():
        return code.commit is None
    info, patch = capture_git(code.repo_root, ignore=store.root)
    return info.get("commit") == code.commit and patch == code.patch


def _apply_patch(folder: Path, patch: str) -> None:
    if patch.strip():
        _git(folder, "apply", "--binary", "--whitespace=nowarn", "-", stdin=patch)


@contextmanager
def checked_out(code: RunCode, store: RunStore) -> Iterator[Path]:
    """The folder to run in: the run's own when the tree matches, else a temporary worktree (removed after)."""
    if tree_matches(code, store):
        yield code.cwd
        return
    assert code.repo_root is not None and code.commit is not None
    holder = Path(tempfile.mkdtemp(prefix=f"unitrack-rerun-{code.run_id}-"))
    worktree = holder / "code"
    _git(code.repo_root, "worktree", "add", "--detach", str(worktree), code.commit)
    try:
        _apply_patch(worktree, code.patch)
        yield worktree / code.relative_cwd
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=code.repo_root, capture_output=True, check=False)
        shutil.rmtree(holder, ignore_errors=True)


def _worktree_description(code: RunCode) -> str:
    patch = " with its uncommitted patch" if code.patch.strip() else ""
    return f"a temporary git worktree at {str(code.commit)[:12]}{patch}, in {code.relative_cwd}"


def describe_rerun(code: RunCode, store: RunStore) -> dict[str, Any]:
    """What ``rerun`` would do (``--dry-run``)."""
    in_place = tree_matches(code, store)
    return {
        "run_id": code.run_id,
        "command": runnable_command(code.command),
        "commit": code.commit,
        "patch_lines": len(code.patch.splitlines()),
        "where": str(code.cwd) if in_place else _worktree_description(code),
        "params": code.params,
    }


def rerun(store: RunStore, ref: str) -> CommitResult:
    """Run ``ref``'s command again at its code, as a new run linked to it by ``rerun_of``."""
    code = load_run_code(store, ref)
    command = runnable_command(code.command)
    with checked_out(code, store) as folder:
        return run_committed(
            command,
            store,
            message=f"rerun of {code.run_id}" + (f": {code.message}" if code.message else ""),
            tags={**code.tags, "rerun_of": code.run_id},
            cwd=folder,
            extra_run_fields={"rerun_of": code.run_id},
        )


def rollback(store: RunStore, ref: str, target: Path) -> dict[str, Any]:
    """Write ``ref``'s code (commit + patch), configuration and best checkpoint into ``target``."""
    code = load_run_code(store, ref)
    if target.exists() and any(target.iterdir()):
        raise ReplayError(f"{target} is not empty: roll back into a new folder")
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {"run_id": code.run_id, "to": str(target)}
    if code.repo_root is not None and code.commit is not None:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", code.commit], cwd=code.repo_root, capture_output=True, check=False
        )
        if archive.returncode != 0:
            raise ReplayError(f"git archive {code.commit[:12]} failed: {archive.stderr.decode(errors='replace').strip()}")
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
        _apply_patch(target, code.patch)
        written["code"] = f"commit {code.commit[:12]}" + (f" + patch ({len(code.patch.splitlines())} lines)" if code.patch else "")
    paths = store.resolve(code.run_id)
    run_file = target / "unitrack-run.json"
    run_file.write_text(
        json.dumps(
            {"run_id": code.run_id, "command": code.command, "cwd": str(code.relative_cwd), "params": code.params, "config": code.config},
            indent=2, sort_keys=True, default=str,
        ) + "\n", encoding="utf-8",
    )  # fmt: skip
    written["config"] = str(run_file)
    checkpoint = best_checkpoint(paths.root)
    if checkpoint is not None:
        destination = target / "checkpoint" / checkpoint.name
        shutil.copytree(checkpoint.path, destination)
        written["checkpoint"] = str(destination)
    written["run_in"] = str(target / code.relative_cwd)
    written["command"] = code.command
    return written

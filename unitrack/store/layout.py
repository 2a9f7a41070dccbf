"""Where things live in the store, named once so that no module spells a path twice."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STORE_ENV = "UNITRACK_DIR"  # names the local store; without it, ./.unitrack
DEFAULT_STORE_DIR = ".unitrack"
ENV_PREFIX = "UNITRACK__"  # UNITRACK__SECTION__KEY=value overrides a config key


def store_path(store: str | os.PathLike[str] | None) -> Path:
    """The store a command or a reference means: ``store`` when given, else ``$UNITRACK_DIR``, else ``./.unitrack``."""
    return Path(store) if store is not None else Path(os.environ.get(STORE_ENV) or DEFAULT_STORE_DIR)


@dataclass(frozen=True)
class RunPaths:
    """The files of one run folder: ``<store>/runs/<run_id>/``."""

    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def params_json(self) -> Path:
        return self.root / "params.json"

    @property
    def summary_json(self) -> Path:
        return self.root / "summary.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def heartbeat(self) -> Path:
        return self.root / "heartbeat"

    @property
    def environment_json(self) -> Path:
        return self.root / "environment.json"

    @property
    def cursors(self) -> Path:
        return self.root / "cursors"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def cursor(self, backend: str) -> Path:
        return self.cursors / f"{backend}.json"

    @property
    def history(self) -> Path:
        """The metric history in columns (``unitrack.store.columns`` owns what is inside)."""
        return self.root / "history"

    @property
    def snapshots(self) -> Path:
        """Weight snapshots, one manifest each: ``snapshots/<name>.json``."""
        return self.root / "snapshots"

    @property
    def checkpoints(self) -> Path:
        """Where checkpoints go when ``checkpointing.checkpoint_dir`` names no other place (and where
        checkpoints bound for object storage are staged)."""
        return self.root / "checkpoints"

    @property
    def checkpoint_registry(self) -> Path:
        """The kept checkpoints (``unitrack.checkpoint.registry`` reads and writes it)."""
        return self.root / "checkpoints.json"

    @property
    def ranks(self) -> Path:
        """The other ranks' own journals under ``rank_policy: all`` without a process group."""
        return self.root / "ranks"

    def rank(self, rank: int) -> RunPaths:
        """Another rank's folder: a journal (``events``) and, once it closed, its ``status_json``."""
        return RunPaths(self.ranks / str(rank))

    @property
    def status_json(self) -> Path:
        """In another rank's folder: written when that rank closed its journal."""
        return self.root / "status.json"


@dataclass(frozen=True)
class StoreLayout:
    """The store's top level: ``runs/``, ``objects/``, the SQLite index, studies, rendezvous, logs."""

    root: Path

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def index(self) -> Path:
        return self.root / "index.sqlite"

    @property
    def studies(self) -> Path:
        """Hyperparameter studies (Optuna): one JSON record each, beside the runs they hold."""
        return self.root / "studies"

    def study(self, name: str) -> Path:
        return self.studies / f"{name}.json"

    def run(self, run_id: str) -> RunPaths:
        return RunPaths(self.runs / run_id)

    def rendezvous(self, key: str) -> Path:
        """Where rank 0 of a distributed launch publishes its run id (no process group)."""
        return self.root / "rendezvous" / f"{key}.json"

    def launch_ranks(self, key: str) -> RunPaths:
        """The folder of a launch's rank journals when rank 0 is on another node (torch.distributed's store)."""
        return RunPaths(self.root / "ranks" / key)

    @property
    def audit(self) -> Path:
        """``unitrack clean``'s record of what it deleted: one JSON line per deletion."""
        return self.root / "audit.jsonl"

    @property
    def ui_access(self) -> Path:
        """``unitrack ui``'s access log: one JSON line per request."""
        return self.root / "ui-access.jsonl"

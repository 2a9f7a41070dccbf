"""Where things live in the store, named once so that no module spells a path twice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STORE_ENV = "UNITRACK_DIR"  # names the local store; without it, ./.unitrack
DEFAULT_STORE_DIR = ".unitrack"
ENV_PREFIX = "UNITRACK__"  # UNITRACK__SECTION__KEY=value overrides a config key


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


@dataclass(frozen=True)
class StoreLayout:
    """The store's top level: ``runs/``, ``objects/`` and the SQLite index."""

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

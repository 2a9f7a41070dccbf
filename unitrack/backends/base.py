"""The Backend interface: small on purpose, so that adding a tracking service is one class.

A backend opens a run, writes batches of events, flushes and closes; where it stores files it
also puts artifacts. It never retries, batches or hides its errors: the dispatcher's worker owns
retries, batching, the checkpoint upload policy and fallback, and reads what it needs to know
about the backend from its :class:`Capabilities`. A backend's own settings live under
``tracking.<name>`` in the config and are validated by the pydantic model it names in
``settings_model``. Built-in and third-party backends are found the same way
(:mod:`unitrack.backends.registry`); ``unitrack.testing.check_backend`` checks one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from unitrack.events import Event

if TYPE_CHECKING:
    from pydantic import BaseModel

    from unitrack.config import Config


@dataclass(frozen=True)
class Capabilities:
    """What the dispatcher needs to know about a backend; ``None`` means no limit.

    The defaults are the safe ones: no artifacts (so a backend that does not store files is
    never asked to), one write at a time, no batch limits.
    """

    max_metric_values_per_write: int | None = None  # metric (and system) values in one write
    max_params_per_write: int | None = None  # parameters and tags in one write
    supports_artifacts: bool = False  # put_artifact / put_checkpoint store files
    concurrent_writes: int = 1  # metric batches the worker may have in flight at once (order-free backends)


@dataclass(frozen=True)
class RunInfo:
    """What a backend is told about the run when it opens it."""

    run_id: str
    name: str
    experiment: str
    run_dir: Path
    start_time: float
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    message: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # redacted
    config_hash: str = ""
    git: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)

    @classmethod
    def from_run_json(cls, run_dir: Path, run: Mapping[str, Any]) -> RunInfo:
        """The run as its ``run.json`` (a mapping of it) describes it: the one way a RunInfo is made."""
        run_dir = Path(run_dir)
        return cls(
            run_id=str(run.get("run_id") or run_dir.name),
            name=str(run.get("name") or run_dir.name),
            experiment=str(run.get("experiment") or ""),
            run_dir=run_dir,
            start_time=float(run.get("start_time") or 0.0),
            tags=dict(run.get("tags") or {}),
            description=run.get("description"),
            message=run.get("message"),
            config=dict(run.get("config") or {}),
            config_hash=str(run.get("config_hash") or ""),
            git=dict(run.get("git") or {}),
            command=list(run.get("command") or []),
        )


class PermanentBackendError(Exception):
    """Raised by a backend for a batch it will never accept; the dispatcher skips it instead of retrying.

    Anything else a backend raises is a transient failure: retried with back-off, then the circuit
    breaker opens and the events wait in the journal.
    """


class Backend(ABC):
    """A destination for a run's events.

    Subclasses set ``name``; where limits apply or files are stored, ``capabilities``; where they
    take settings, ``settings_model`` (a pydantic model, filled from ``tracking.<name>``). The
    registry builds a backend as ``cls(config)``; the base constructor keeps the validated settings
    in ``self.settings`` (None without a model).
    """

    name: ClassVar[str] = "backend"
    capabilities: ClassVar[Capabilities] = Capabilities()
    settings_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, config: Config | None = None) -> None:
        self.settings: Any = self.settings_from(config)

    @classmethod
    def settings_from(cls, config: Config | None) -> Any:
        """This backend's settings from ``tracking.<name>`` of ``config`` (validated; defaults when absent)."""
        if cls.settings_model is None:
            return None
        raw = config.tracking.backend_settings.get(cls.name, {}) if config is not None else {}
        return cls.settings_model.model_validate(raw)

    @abstractmethod
    def open(self, run: RunInfo) -> None:
        """Create or reopen the run in the backend (idempotent: a retry or ``unitrack sync`` reopens it)."""

    @abstractmethod
    def write(self, events: Sequence[Event]) -> None:
        """Deliver a batch of events (never artifacts; those go through ``put_artifact``)."""

    @abstractmethod
    def close(self, status: str) -> None:
        """Finish the run in the backend with unitrack's final status."""

    def put_artifact(self, path: Path, name: str) -> None:
        """Store the file or folder at ``path`` under ``name``; only called when ``supports_artifacts``.

        Not implementing it is safe: ``NotImplementedError`` tells the worker the backend stores no files.
        """
        raise NotImplementedError(f"{self.name} does not store artifacts")

    def put_checkpoint(self, path: Path, data: Mapping[str, Any]) -> None:
        """Upload the checkpoint folder at ``path`` (``data`` is its ``checkpoint`` event's payload).

        Called by the worker when ``checkpointing.upload`` wants it; by default an artifact
        under ``checkpoints/<name>``. A checkpoint gone (removed by retention) is a permanent error.
        """
        if not path.exists():
            raise PermanentBackendError(f"checkpoint {data.get('name')!r} is gone from {path} (removed by retention?)")
        self.put_artifact(path, f"checkpoints/{data.get('name')}")

    def flush(self) -> None:  # noqa: B027 - an optional hook
        """Push out anything the backend buffers itself."""

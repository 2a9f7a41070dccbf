"""The Backend interface: small on purpose, so that adding a tracking service is one module.

A backend opens a run, writes batches of events, puts artifacts, flushes and closes. It never
retries, batches or hides its errors: the dispatcher owns retries, batching and fallback, and
reads the backend's limits from its :class:`Capabilities` instead of hard-coding them twice.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from unitrack.events import Event


@dataclass(frozen=True)
class Capabilities:
    """What a backend accepts; ``None`` means no limit."""

    max_metric_values_per_write: int | None = None
    max_params_per_write: int | None = None
    max_param_value_length: int | None = None
    max_key_length: int | None = None
    invalid_key_chars: str | None = None  # a regex character class of what a key may not contain
    supports_artifacts: bool = True
    supports_deletion: bool = False
    deduplicates_metrics: bool = False  # replaying an already delivered point is harmless
    max_tags_per_write: int | None = None
    max_tag_value_length: int | None = None
    max_request_bytes: int | None = None  # the largest write the backend accepts, encoded
    concurrent_writes: int = 1  # metric batches the worker may have in flight at once (order-free backends)

    def sanitize_key(self, key: str) -> str:
        """``key`` with characters the backend refuses replaced by '_' and cut to its length limit."""
        if self.invalid_key_chars:
            key = re.sub(self.invalid_key_chars, "_", key)
        if self.max_key_length is not None and len(key) > self.max_key_length:
            key = key[: self.max_key_length]
        return key


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
    resumed: bool = False


class PermanentBackendError(Exception):
    """Raised by a backend for a batch it will never accept; the dispatcher skips it instead of retrying."""


class Backend(ABC):
    """A destination for a run's events. Subclasses set ``name`` and, where limits apply, ``capabilities``."""

    name: ClassVar[str] = "backend"
    capabilities: ClassVar[Capabilities] = Capabilities()

    @abstractmethod
    def open(self, run: RunInfo) -> None:
        """Create or reopen the run in the backend; raise when the backend cannot be reached."""

    @abstractmethod
    def write(self, events: Sequence[Event]) -> None:
        """Deliver a batch of events (never artifacts; those go through ``put_artifact``)."""

    def put_artifact(self, path: Path, name: str) -> None:
        """Store the file or folder at ``path`` under ``name``; only called when ``supports_artifacts``."""
        raise NotImplementedError(f"{self.name} does not store artifacts")

    def flush(self) -> None:  # noqa: B027 - an optional hook
        """Push out anything the backend buffers itself."""

    @abstractmethod
    def close(self, status: str) -> None:
        """Finish the run in the backend with unitrack's final status."""

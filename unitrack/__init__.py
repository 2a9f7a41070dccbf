"""unitrack: one experiment tracker, a local store, and mirrors in MLflow, W&B and TensorBoard.

Importing the package is cheap on purpose: the public names below are resolved on first
use, so ``import unitrack`` loads neither torch, pydantic nor any tracking backend.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ExperimentTracker": "unitrack.tracker",
    "experiment_tracking": "unitrack.tracker",
    "log_all": "unitrack.oneshot",
    "Config": "unitrack.config",
    "load_config": "unitrack.config",
    "config_hash": "unitrack.config",
    "Backend": "unitrack.backends.base",
    "Capabilities": "unitrack.backends.base",
    "RunInfo": "unitrack.backends.base",
    "UnitrackError": "unitrack.errors",
    "ConfigError": "unitrack.errors",
    "RunNotFoundError": "unitrack.errors",
    # the read API
    "runs": "unitrack.reading",
    "open_run": "unitrack.reading",
    "RunView": "unitrack.readers.view",
    # compare / explain
    "gather_evidence": "unitrack.analysis",
    "explain": "unitrack.analysis.explain",
    "explain_sweep": "unitrack.analysis.sweep",
    "CheckpointInfo": "unitrack.checkpoint.registry",
    "load_checkpoint": "unitrack.checkpoint.restore_any",
    "CheckpointError": "unitrack.checkpoint.errors",
    "CheckpointSaveError": "unitrack.checkpoint.errors",
    "CheckpointCorruptError": "unitrack.checkpoint.errors",
    "CheckpointNotFoundError": "unitrack.checkpoint.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from unitrack.analysis import gather_evidence
    from unitrack.analysis.explain import explain
    from unitrack.analysis.sweep import explain_sweep
    from unitrack.backends.base import Backend, Capabilities, RunInfo
    from unitrack.checkpoint.errors import (
        CheckpointCorruptError,
        CheckpointError,
        CheckpointNotFoundError,
        CheckpointSaveError,
    )
    from unitrack.checkpoint.registry import CheckpointInfo
    from unitrack.checkpoint.restore_any import load_checkpoint
    from unitrack.config import Config, config_hash, load_config
    from unitrack.errors import ConfigError, RunNotFoundError, UnitrackError
    from unitrack.oneshot import log_all
    from unitrack.readers.view import RunView
    from unitrack.reading import open_run, runs
    from unitrack.tracker import ExperimentTracker, experiment_tracking


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'unitrack' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

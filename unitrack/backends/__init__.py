"""Tracking backends: the always-on local store and the remote mirrors, created by name.

Each remote backend lives in its own module and imports its package only when it is used,
so a config that does not name MLflow never imports MLflow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from unitrack.errors import BackendUnavailableError

if TYPE_CHECKING:
    from unitrack.backends.base import Backend
    from unitrack.config import Config

# backend name -> (module, class, the package it needs, the extra that installs it)
REGISTRY: dict[str, tuple[str, str, str, str]] = {
    "mlflow": ("unitrack.backends.mlflow", "MlflowBackend", "mlflow", "mlflow"),
    "wandb": ("unitrack.backends.wandb", "WandbBackend", "wandb", "wandb"),
    "tensorboard": ("unitrack.backends.tensorboard", "TensorBoardBackend", "tensorboard", "tensorboard"),
}


def require_package(package: str, extra: str, what: str) -> None:
    """Raise one clear error naming the extra to install when ``package`` is missing."""
    from importlib.util import find_spec

    if find_spec(package) is None:
        raise BackendUnavailableError(
            f"{what} needs the '{package}' package, which is not installed: pip install 'unitrack[{extra}]'"
        )


def create_backend(name: str, config: Config) -> Backend:
    """The backend called ``name``, set up from ``config``."""
    try:
        module_name, class_name, package, extra = REGISTRY[name]
    except KeyError:
        raise BackendUnavailableError(f"unknown backend {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
    require_package(package, extra, f"the {name} backend")
    backend_class = getattr(import_module(module_name), class_name)
    return backend_class(config)


def create_backends(config: Config) -> list[Backend]:
    """The remote backends a config switches on, in a fixed order."""
    return [create_backend(name, config) for name in config.tracking.remote_backends]

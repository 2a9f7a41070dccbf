"""The one place backends are registered: built-ins by name, third-party ones by entry point.

A third-party package registers its class under the entry-point group ``unitrack.backends``
(name → ``module:Class``); a config selects it like a built-in (``tracking: {backends: [local,
<name>]}``) with its settings under ``tracking.<name>``. Everything that needs the list of backends
(the config's validation, the tracker, ``unitrack sync``) asks here, so adding a backend is
registering one class. Nothing is imported until a backend is used, and entry points are only
read when a name is not a built-in.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

from unitrack.errors import BackendUnavailableError

if TYPE_CHECKING:
    from unitrack.backends.base import Backend
    from unitrack.config import Config

ENTRY_POINT_GROUP = "unitrack.backends"
LOCAL = "local"  # the local store: always on, not a Backend (the journal writer)


@dataclass(frozen=True)
class BackendEntry:
    """Where a backend's class lives, and the package (and extra) it needs."""

    name: str
    target: str  # "module:Class"
    package: str | None = None
    extra: str | None = None

    def load(self) -> type[Backend]:
        if self.package is not None and importlib.util.find_spec(self.package) is None:
            raise BackendUnavailableError(
                f"the {self.name} backend needs the '{self.package}' package, which is not installed: "
                f"pip install 'unitrack[{self.extra or self.package}]'"
            )
        module_name, _, attribute = self.target.partition(":")
        try:
            backend_class = getattr(import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise BackendUnavailableError(f"backend {self.name!r} ({self.target}) cannot be loaded: {exc}") from exc
        if getattr(backend_class, "name", None) != self.name:
            raise BackendUnavailableError(
                f"backend {self.name!r} is registered as {self.target}, whose name is {getattr(backend_class, 'name', None)!r}"
            )
        return backend_class


BUILTIN: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry("mlflow", "unitrack.backends.mlflow:MlflowBackend", "mlflow", "mlflow"),
        BackendEntry("wandb", "unitrack.backends.wandb:WandbBackend", "wandb", "wandb"),
        BackendEntry("tensorboard", "unitrack.backends.tensorboard:TensorBoardBackend", "tensorboard", "tensorboard"),
    )
}


@cache
def _entry_points() -> dict[str, BackendEntry]:
    from importlib.metadata import entry_points

    found = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in BUILTIN and point.name != LOCAL:  # a built-in name is not taken over
            found[point.name] = BackendEntry(point.name, point.value)
    return found


def refresh() -> None:
    """Read the entry points again (after installing a backend into a running interpreter)."""
    _entry_points.cache_clear()


def entry(name: str) -> BackendEntry:
    """The registration of backend ``name``; raises naming the known ones."""
    found = BUILTIN.get(name) or _entry_points().get(name)
    if found is None:
        raise BackendUnavailableError(f"unknown backend {name!r}; known: {', '.join(known_names())}")
    return found


def is_known(name: str) -> bool:
    return name == LOCAL or name in BUILTIN or name in _entry_points()


def known_names() -> list[str]:
    """Every backend a config may name: local, the built-ins, then the installed third-party ones."""
    return [LOCAL, *BUILTIN, *sorted(_entry_points())]


def backend_class(name: str) -> type[Backend]:
    return entry(name).load()


def create_backend(name: str, config: Config) -> Backend:
    """The backend called ``name``, set up from ``config`` (as ``cls(config)``: what ``check_backend`` calls too)."""
    return backend_class(name)(config)


def create_backends(config: Config) -> list[Backend]:
    """The remote backends a config switches on, in its order."""
    return [create_backend(name, config) for name in config.tracking.remote_backends]

"""One view of a run, wherever it was recorded: the local store or a backend's own records.

``read_run(ref, store)`` is what ``show``, ``export``, ``compare`` and ``explain`` call. A plain
reference (an id, a prefix, ``latest``, ``latest~N``) names a local run; a reference with a
scheme (``mlflow:``, ``wandb:``, ``tb:``...) is handed to that backend's reader.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING

from unitrack.readers.view import Point, RunView

if TYPE_CHECKING:
    from unitrack.store.runs import RunStore

__all__ = ["Point", "RunView", "is_backend_ref", "read_run", "register_reader"]

Reader = Callable[[str], RunView]
_READERS: dict[str, Reader] = {}
# the built-in backends' readers, imported (and so registered) when a reference names their scheme:
# importing them all costs a tenth of what ``unitrack ls`` or ``show`` of a local run costs
_BUILT_IN = {
    "mlflow": "unitrack.readers.mlflow",
    "wandb": "unitrack.readers.wandb",
    "tb": "unitrack.readers.tensorboard",
    "tensorboard": "unitrack.readers.tensorboard",
}


def register_reader(scheme: str, reader: Reader) -> None:
    """Make ``scheme:...`` references readable (a backend's reader registers itself here)."""
    _READERS[scheme] = reader


def is_backend_ref(ref: str) -> bool:
    scheme, sep, _ = ref.partition(":")
    return bool(sep) and scheme.split("+")[0] in _known_schemes()


def _known_schemes() -> set[str]:
    return set(_READERS) | set(_BUILT_IN)


def _reader(scheme: str) -> Reader | None:
    if scheme not in _READERS and scheme in _BUILT_IN:
        import_module(_BUILT_IN[scheme])  # registers itself
    return _READERS.get(scheme)


def read_run(ref: str, store: RunStore) -> RunView:
    """The run ``ref`` names: local by default, a backend's when ``ref`` has its scheme."""
    scheme, sep, _ = ref.partition(":")
    reader = _reader(scheme.split("+")[0]) if sep else None
    if reader is not None:
        return reader(ref)
    from unitrack.readers.local import read_local_run

    return read_local_run(store, ref)

"""One view of a run, wherever it was recorded: the local store or a backend's own records.

``read_run(ref, store)`` is what ``show``, ``export``, ``compare`` and ``explain`` call. A plain
reference (an id, a prefix, ``latest``, ``latest~N``) names a local run; a reference with a
scheme (``mlflow:``, ``wandb:``, ``tb:``...) is handed to that backend's reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unitrack.store.runs import RunStore

Point = dict[str, Any]


@dataclass
class RunView:
    """A run as the analysis and the CLI see it.

    ``record`` has the shape of ``RunRecord.to_dict()`` (run_id, name, experiment, status, tags,
    params, metrics {key: last}, metric_summary, system, start_time, end_time, duration, info,
    path); ``metric_history`` is ``{key: [{step, time, value}]}`` with superseded points dropped;
    ``system_history`` is ``[{time, rank, values}]``; ``source`` says where it was read from.
    """

    record: dict[str, Any]
    metric_history: dict[str, list[Point]] = field(default_factory=dict)
    system_history: list[Point] = field(default_factory=list)
    artifacts: list[Point] = field(default_factory=list)
    source: str = "local"
    path: Path | None = None

    @property
    def run_id(self) -> str:
        return str(self.record.get("run_id") or "")


Reader = Callable[[str], RunView]
_READERS: dict[str, Reader] = {}


def register_reader(scheme: str, reader: Reader) -> None:
    """Make ``scheme:...`` references readable (a backend's reader registers itself here)."""
    _READERS[scheme] = reader


def is_backend_ref(ref: str) -> bool:
    scheme, sep, _ = ref.partition(":")
    return bool(sep) and scheme.split("+")[0] in _known_schemes()


def _known_schemes() -> set[str]:
    return set(_READERS)


def read_run(ref: str, store: RunStore) -> RunView:
    """The run ``ref`` names: local by default, a backend's when ``ref`` has its scheme."""
    scheme, sep, _ = ref.partition(":")
    reader = _READERS.get(scheme.split("+")[0]) if sep else None
    if reader is not None:
        return reader(ref)
    from unitrack.readers.local import read_local_run

    return read_local_run(store, ref)


# --- backend readers: each registers its scheme; they import their package only when reading
from unitrack.readers import mlflow as _mlflow_reader  # noqa: E402,F401
from unitrack.readers import tensorboard as _tensorboard_reader  # noqa: E402,F401
from unitrack.readers import wandb as _wandb_reader  # noqa: E402,F401

"""The local store as a ``RunView``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from unitrack.readers import RunView
from unitrack.store import history

if TYPE_CHECKING:
    from unitrack.store.runs import RunStore


def read_local_run(store: RunStore, ref: str) -> RunView:
    paths = store.resolve(ref)
    record = store.load(paths).to_dict()
    views = history.read_views(paths)
    return RunView(
        record=record,
        metric_history=views.metrics,
        system_history=views.system,
        artifacts=views.artifacts,
        source="local",
        path=paths.root,
    )

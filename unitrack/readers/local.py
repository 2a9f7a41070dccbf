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
    return RunView(
        record=record,
        metric_history=history.metric_history(paths),
        system_history=history.system_history(paths),
        artifacts=history.artifacts(paths),
        source="local",
        path=paths.root,
    )

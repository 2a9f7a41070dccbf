"""The local store as a ``RunView``: ``run.json`` and friends for the record, the columnar
history for the curves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from unitrack.readers.view import PointSeries, RunDetails, RunView
from unitrack.store import history

if TYPE_CHECKING:
    from unitrack.store.layout import RunPaths
    from unitrack.store.runs import RunStore


def local_details(store: RunStore, paths: RunPaths) -> RunDetails:
    """Everything the run folder holds about the run, its metric history included."""
    record = store.load(paths).to_dict()
    views = history.read_views(paths)
    return RunDetails(record, PointSeries(views.metrics), views.system, views.artifacts)


def read_local_run(store: RunStore, ref: str) -> RunView:
    paths = store.resolve(ref)
    details = local_details(store, paths)
    view = RunView(details.record, source="local", path=paths.root, details=lambda: details)
    return view

"""The local store as a ``RunView``: ``run.json`` and friends for the record, the columnar
history for the curves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from unitrack.readers.view import RunDetails, RunView

if TYPE_CHECKING:
    from unitrack.store.layout import RunPaths
    from unitrack.store.runs import RunStore


def local_details(store: RunStore, paths: RunPaths) -> RunDetails:
    """Everything the run folder holds about the run, its metric history included."""
    from unitrack.readers.columnar import ColumnarSeries

    record = store.load(paths).to_dict()
    series = ColumnarSeries(paths)
    return RunDetails(record, series, series.system_history(), series.artifacts())


def read_local_run(store: RunStore, ref: str) -> RunView:
    paths = store.resolve(ref)
    details = local_details(store, paths)
    view = RunView(details.record, source="local", path=paths.root, details=lambda: details)
    return view

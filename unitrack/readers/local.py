"""The local store as a ``RunView``: ``run.json`` and friends for the record, the columnar
history for the curves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unitrack.readers.view import RunDetails, RunView

if TYPE_CHECKING:
    from unitrack.store.layout import RunPaths
    from unitrack.store.runs import RunStore


def local_details(store: RunStore, paths: RunPaths, record: dict[str, Any] | None = None) -> RunDetails:
    """Everything the run folder holds about the run (``record``: its files, when already read),
    its metric history included."""
    from unitrack.readers.columnar import ColumnarSeries

    series = ColumnarSeries(paths)
    record = record if record is not None else store.load(paths).to_dict()
    return RunDetails(record, series, series.system_history(), series.artifacts())


def read_local_run(store: RunStore, ref: str) -> RunView:
    """The run's files read now; its history, system samples and artifacts on first use."""
    paths = store.resolve(ref)
    record = store.load(paths).to_dict()
    return RunView(record, source="local", path=paths.root, details=lambda: local_details(store, paths, record))

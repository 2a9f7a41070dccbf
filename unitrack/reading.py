"""The read API: ``unitrack.runs(filter)`` and ``unitrack.open_run(ref)``, the one read path.

``ls``, ``show``, ``export``, ``compare``, ``explain``, ``delta``, ``plot``, the dashboard and a
notebook all read through here. Listing answers from the store's SQLite index and opens no run
folder; a run's curves come from its columnar history (docs/reading.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.failure import failure_line
from unitrack.readers.view import RunView
from unitrack.store.layout import DEFAULT_STORE_DIR, STORE_ENV, RunPaths

if TYPE_CHECKING:
    from unitrack.store.index import IndexRow
    from unitrack.store.runs import RunStore

def store_root(store: str | os.PathLike[str] | None = None) -> Path:
    """The local store: ``store``, else ``$UNITRACK_DIR``, else ``./.unitrack``."""
    return Path(store) if store is not None else Path(os.environ.get(STORE_ENV) or DEFAULT_STORE_DIR)


def open_store(store: Any = None) -> RunStore:
    """A :class:`RunStore` for ``store`` (a path, None for the default, or a store already open)."""
    from unitrack.store.runs import RunStore

    return store if isinstance(store, RunStore) else RunStore(store_root(store))


def runs(
    filter: str | None = None,
    *,
    store: Any = None,
    experiment: str | None = None,
    status: str | Sequence[str] | None = None,
    limit: int | None = None,
    tags: Sequence[str] | None = None,
    git: str | None = None,
) -> list[RunView]:
    """The runs of the local store that match, newest first, answered from the store's index.

    ``filter`` is the ``unitrack ls --filter`` grammar (``"params.lr > 0.1 and metrics.acc >= 0.9"``,
    ``tags.team = 'nlp' or attributes.status IN ('completed')``); ``experiment`` and ``status``
    (one or several) narrow it further, ``tags`` (``KEY`` or ``KEY=VALUE``, all required) and ``git``
    (a commit prefix) as ``ls --tag`` / ``--git`` do; ``limit`` keeps the newest N. Each view's
    identity, params, tags and summary come from the index; anything else is read on first use.
    """
    opened = open_store(store)
    runs_dir = opened.layout.runs
    matching = _matching(opened, filter, experiment, status, limit, tags, git)
    return [_listed_view(opened, runs_dir / row.run_id, row, listing) for row, listing in matching]


def listings(
    filter: str | None = None,
    *,
    store: Any = None,
    experiment: str | None = None,
    status: str | Sequence[str] | None = None,
    limit: int | None = None,
    tags: Sequence[str] | None = None,
    git: str | None = None,
) -> list[dict[str, Any]]:
    """:func:`run_summary` of each run :func:`runs` gives (what ``ls --json`` prints), without making
    the views: a tenth of the time of listing a thousand runs."""
    return [listing for _, listing in _matching(open_store(store), filter, experiment, status, limit, tags, git)]


def _matching(
    opened: RunStore,
    filter: str | None,
    experiment: str | None,
    status: str | Sequence[str] | None,
    limit: int | None,
    tags: Sequence[str] | None,
    git: str | None,
) -> Iterator[tuple[IndexRow, dict[str, Any]]]:
    from unitrack.store.query import compile_filter

    predicate = compile_filter(filter or "")
    wanted_status = [status] if isinstance(status, str) else list(status or [])
    found = 0
    for row in sorted(opened.rows(), key=lambda r: r.run_id, reverse=True):
        listing = run_summary_from_row(row)
        if tags and not _matches_tags(listing["tags"], tags):
            continue
        if git and not (listing["git_commit"] or "").lower().startswith(git.lower()):
            continue
        if wanted_status and listing["status"] not in wanted_status:
            continue
        if experiment is not None and listing["experiment"] != experiment:
            continue
        fields = {"params": listing["params"], "metrics": listing["metrics"], "tags": listing["tags"], "attributes": listing}
        if predicate(fields):
            yield row, listing
            found += 1
            if limit is not None and found >= limit:
                return


def open_run(ref: str, store: Any = None) -> RunView:
    """The run ``ref`` names: an id, an unambiguous prefix, ``latest`` or ``latest~N`` in the local
    store, or a backend's run (``mlflow://HOST:PORT/RUN_ID``, ``mlflow:RUN_ID``, ``wandb:RUN_DIR``,
    ``tb:LOGDIR[#RUN]``). Raises :class:`unitrack.RunNotFoundError` naming ``ref`` when there is none."""
    from unitrack.readers import read_run

    return read_run(ref, open_store(store))


def run_summary(view: RunView) -> dict[str, Any]:
    """One run of ``ls --json``: identity, status, message, times, git commit, params, last metrics, tags."""
    listing = getattr(view, "listing", None)
    if listing is not None:
        return dict(listing)
    record = view.record
    start, end = record.get("start_time"), record.get("end_time")
    return {
        "run_id": view.run_id,
        "name": view.name,
        "experiment": view.experiment,
        "status": view.status,
        "message": view.message,
        "error": failure_line(view.record.get("error")),
        "start_time": start,
        "end_time": end,
        "duration": (end - start) if start and end else None,
        "git_commit": view.git.get("commit"),
        "config_hash": view.config_hash,
        "params": view.params,
        "metrics": {key: s.get("last") for key, s in view.summary.items() if s.get("last") is not None},
        "tags": view.tags,
    }


def run_summary_from_row(row: IndexRow) -> dict[str, Any]:
    attributes = row.attributes
    start, end = attributes.get("start_time"), attributes.get("end_time")
    return {
        "run_id": row.run_id,
        "name": attributes.get("name"),
        "experiment": attributes.get("experiment"),
        "status": attributes.get("status"),
        "message": attributes.get("message"),
        "error": attributes.get("error"),
        "start_time": start,
        "end_time": end,
        "duration": (end - start) if start and end else None,
        "git_commit": attributes.get("git_commit"),
        "config_hash": attributes.get("config_hash"),
        "params": row.params,
        "metrics": {key: s["last"] for key, s in row.metrics.items() if s.get("last") is not None},
        "tags": row.tags,
    }


def _listed_view(store: RunStore, folder: Path, row: IndexRow, listing: dict[str, Any]) -> RunView:
    """A view made from the index alone; the run folder is read only when more is asked for."""
    from unitrack.readers.local import local_details

    record = {
        **listing,
        "metric_summary": row.metrics,
        "info": {"git": {"commit": listing["git_commit"]}, "config_hash": listing["config_hash"]},
    }
    view = RunView(record, source="local", path=folder, details=lambda: local_details(store, RunPaths(folder)))
    view.listing = listing
    return view


def _matches_tags(tags: dict[str, str], wanted: Sequence[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in tags or (sep and tags[key] != value):
            return False
    return True

"""Continuing a run: which run folder to re-open, what its ``run.json`` becomes, where it rewinds to.

A resumed run keeps its id, journal, metric history and checkpoint registry. It goes on from
its last checkpoint that verifies; a ``rewind`` event in the journal marks the metric points
logged after that checkpoint's step as superseded.
"""

from __future__ import annotations

from typing import Any

from unitrack.errors import RunNotFoundError
from unitrack.store.fsio import read_json
from unitrack.store.layout import RunPaths
from unitrack.store.runs import RunStore, effective_status


def run_to_resume(store: RunStore, ref: str, experiment: str) -> RunPaths:
    """The run named by ``ref``: a run id (or prefix), or "last" (the newest run of ``experiment``)."""
    if ref == "last":
        for run_id in reversed(store.run_ids()):
            paths = store.layout.run(run_id)
            if (read_json(paths.run_json, {}) or {}).get("experiment") == experiment:
                break
        else:
            raise RunNotFoundError(f"resume='last': no earlier run of experiment {experiment!r} in {store.root}")
    else:
        paths = store.resolve(ref)
    run = read_json(paths.run_json, {}) or {}
    if effective_status(run, paths.heartbeat) == "running":
        raise RunNotFoundError(f"run {paths.run_id} is still running (pid {run.get('pid')}): it cannot be resumed")
    return paths


def resumed_run_json(previous: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """``run.json`` of a resumed run: this process's facts, the run's identity, tags and history kept."""
    resumes = [*previous.get("resumes", []), fresh["start_time"]]
    return {
        **fresh,
        "run_id": previous.get("run_id", fresh["run_id"]),
        "name": previous.get("name", fresh["name"]),
        "start_time": previous.get("start_time", fresh["start_time"]),
        "tags": {**(previous.get("tags") or {}), **fresh["tags"]},
        "git": previous.get("git") or {},
        "resumes": resumes,
    }

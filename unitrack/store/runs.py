"""The run store: create run folders, name runs by id or prefix, read them back, keep the index.

A run's status is what its ``run.json`` says, except that a run still marked ``running`` whose
process is gone reads as ``crashed``: on the same host by its pid (and the pid's start time, so
a reused pid does not fool it), elsewhere by a heartbeat that stopped.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unitrack.errors import RunNotFoundError, StoreError
from unitrack.failure import failure_line
from unitrack.names import is_run_id, new_run_id
from unitrack.nonfinite import decode_number
from unitrack.store.fsio import atomic_write_json, read_json
from unitrack.store.index import IndexRow, RunIndex
from unitrack.store.layout import STORE_ENV, RunPaths, StoreLayout, store_path

STATUSES = ("running", "completed", "failed", "interrupted", "pruned", "crashed")
FINISHED_STATUSES = ("completed", "failed", "interrupted", "pruned", "crashed")
HEARTBEAT_INTERVAL_S = 5.0
STALE_HEARTBEAT_S = 120.0


def process_alive(pid: int | None, start_time: float | None) -> bool:
    """True while process ``pid`` (started at ``start_time``) is alive and not a zombie."""
    if not pid:
        return False
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return start_time is None or abs(process.create_time() - start_time) < 2.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def effective_status(run: dict[str, Any], heartbeat: Path) -> str:
    """The status to show for ``run.json`` data: a dead ``running`` run is ``crashed``."""
    status = str(run.get("status", "running"))
    if status != "running":
        return status
    if run.get("host") == socket.gethostname():
        return "running" if process_alive(run.get("pid"), run.get("pid_start_time")) else "crashed"
    try:
        age = time.time() - heartbeat.stat().st_mtime
    except FileNotFoundError:
        age = time.time() - float(run.get("start_time") or 0)
    return "crashed" if age > STALE_HEARTBEAT_S else "running"


@dataclass
class RunRecord:
    """Everything a run folder says about a run (the metric history is read separately)."""

    run_id: str
    name: str
    experiment: str
    status: str
    message: str | None
    tags: dict[str, str]
    params: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    system: dict[str, dict[str, Any]]
    start_time: float | None
    end_time: float | None
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    error: dict[str, Any] | None = None  # the exception that ended a failed run (unitrack.failure)

    @property
    def last_metrics(self) -> dict[str, Any]:
        return {key: summary.get("last") for key, summary in self.metrics.items()}

    @property
    def duration(self) -> float | None:
        if self.start_time is None:
            return None
        end = self.end_time if self.end_time is not None else (time.time() if self.status == "running" else None)
        return None if end is None else max(0.0, end - self.start_time)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path) if self.path else None
        data["metrics"] = self.last_metrics
        data["metric_summary"] = self.metrics
        data["duration"] = self.duration
        return data


def _decoded_summary(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        key: {k: decode_number(v) if k in ("last", "min", "max", "mean") and v is not None else v for k, v in s.items()}
        for key, s in summary.items()
    }


def make_index_row(
    run: dict[str, Any], status: str, params: dict[str, Any], metrics: dict[str, dict[str, Any]]
) -> IndexRow:
    """The index entry of a run from its ``run.json`` data, params and (encoded) metric summary."""
    attributes = {
        "run_id": run.get("run_id"),
        "name": run.get("name"),
        "experiment": run.get("experiment"),
        "status": status,
        "message": run.get("message"),
        "start_time": run.get("start_time"),
        "end_time": run.get("end_time"),
        "git_commit": (run.get("git") or {}).get("commit"),
        "config_hash": run.get("config_hash"),
        "host": run.get("host"),
        "pid": run.get("pid"),
        "pid_start_time": run.get("pid_start_time"),
        "error": failure_line(run.get("error")),
    }
    return IndexRow(attributes, dict(params), dict(run.get("tags") or {}), dict(metrics))


class RunStore:
    """The local store rooted at ``root`` (``.unitrack`` by default)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.layout = StoreLayout(self.root)
        self.index = RunIndex(self.layout.index)

    # --- creating -----------------------------------------------------------------------------

    def new_run(self, run_id: str | None = None) -> RunPaths:
        """Create a fresh, uniquely named run folder (named ``run_id`` when given: ``unitrack commit``'s run)."""
        self.layout.runs.mkdir(parents=True, exist_ok=True)
        if run_id is not None:
            if not is_run_id(run_id):
                raise StoreError(f"run id {run_id!r} is not a run id: lower-case letters and digits")
            if self.layout.run(run_id).root.exists():
                raise StoreError(f"run {run_id} already exists in {self.root}")
        for _ in range(100):
            paths = self.layout.run(run_id or new_run_id())
            try:
                paths.root.mkdir()
            except FileExistsError:
                continue
            paths.artifacts.mkdir()
            paths.cursors.mkdir()
            return paths
        raise StoreError(f"could not create a new run folder in {self.layout.runs}")

    # --- naming -------------------------------------------------------------------------------

    def run_ids(self) -> list[str]:
        try:
            names = os.listdir(self.layout.runs)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if is_run_id(n) and self.layout.run(n).run_json.exists())

    def resolve(self, ref: str) -> RunPaths:
        """The run named by its id, an unambiguous prefix of it, or ``latest`` / ``latest~N``."""
        ref = ref.strip()
        if ref == "latest" or ref.startswith("latest~"):
            return self._latest(ref)
        if not is_run_id(ref):
            raise RunNotFoundError(f"{ref!r} is not a run id: ids are lower-case letters and digits")
        exact = self.layout.run(ref)
        if (exact.run_json).exists():
            return exact
        matches = [run_id for run_id in self.run_ids() if run_id.startswith(ref)]
        if not matches:
            raise RunNotFoundError(f"no run {ref!r} in {self.root}")
        if len(matches) > 1:
            shown = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
            raise RunNotFoundError(f"{ref!r} matches {len(matches)} runs ({shown}): give more characters")
        return self.layout.run(matches[0])

    def _latest(self, ref: str) -> RunPaths:
        back = ref.partition("~")[2] or "0"
        if not back.isdigit():
            raise RunNotFoundError(f"{ref!r}: write latest~N with a whole number N")
        try:
            names = sorted((n for n in os.listdir(self.layout.runs) if is_run_id(n)), reverse=True)
        except FileNotFoundError:
            names = []
        found = 0
        for run_id in names:  # newest first: only the folders up to the one wanted are looked into
            if self.layout.run(run_id).run_json.exists():
                if found == int(back):
                    return self.layout.run(run_id)
                found += 1
        raise RunNotFoundError(f"{ref!r}: the store {self.root} holds {found} run(s)")

    # --- reading ------------------------------------------------------------------------------

    def load(self, ref: str | RunPaths) -> RunRecord:
        paths = ref if isinstance(ref, RunPaths) else self.resolve(ref)
        run = read_json(paths.run_json)
        if run is None:
            raise RunNotFoundError(f"no run.json in {paths.root}")
        summary = read_json(paths.summary_json, {}) or {}
        params = read_json(paths.params_json, {}) or {}
        info = {k: v for k, v in run.items() if k not in ("tags", "error")}
        return RunRecord(
            run_id=paths.run_id,
            name=run.get("name") or run.get("experiment") or paths.run_id,
            experiment=run.get("experiment") or "",
            status=self._status(paths, run),
            message=run.get("message"),
            tags=dict(run.get("tags") or {}),
            params=params,
            metrics=_decoded_summary(summary.get("metrics", {})),
            system=_decoded_summary(summary.get("system", {})),
            start_time=run.get("start_time"),
            end_time=run.get("end_time"),
            info=info,
            path=paths.root,
            error=run.get("error"),
        )

    def _status(self, paths: RunPaths, run: dict[str, Any]) -> str:
        status = effective_status(run, paths.heartbeat)
        if status == "crashed" and run.get("status") == "running":
            self._record_crash(paths, run)
        return status

    def _record_crash(self, paths: RunPaths, run: dict[str, Any]) -> None:
        """Write down that a run crashed, so that the answer no longer depends on pids."""
        if run.get("host") != socket.gethostname():
            return  # another host's run may only be slow to beat; keep deriving it
        end: float | None
        try:
            end = paths.heartbeat.stat().st_mtime
        except FileNotFoundError:
            end = run.get("start_time")
        try:
            atomic_write_json(paths.run_json, {**run, "status": "crashed", "end_time": end})
            self.index.set_status(paths.run_id, "crashed")
        except OSError:
            pass

    # --- the index ----------------------------------------------------------------------------

    def index_row(self, paths: RunPaths) -> IndexRow:
        """The index entry of a run, built from its files."""
        run = read_json(paths.run_json, {}) or {}
        summary = read_json(paths.summary_json, {}) or {}
        params = read_json(paths.params_json, {}) or {}
        return make_index_row(run, self._status(paths, run), params, summary.get("metrics", {}))

    def reindex(self) -> int:
        """Rebuild the index from the run folders; return the number of runs indexed."""
        rows = [self.index_row(self.layout.run(run_id)) for run_id in self.run_ids()]
        self.index.clear()
        self.index.upsert(rows)
        return len(rows)

    def rows(self) -> list[IndexRow]:
        """Every run of the store from the index, brought up to date with the folders first.

        No run folder is opened except to index one the index lacks, or to write down that a
        run marked running has crashed (its pid, host and heartbeat are in the index).
        """
        try:
            on_disk = {name for name in os.listdir(self.layout.runs) if is_run_id(name)}
        except FileNotFoundError:
            on_disk = set()
        rows = self.index.rows()
        indexed = {row.run_id for row in rows}
        missing = sorted(r for r in on_disk - indexed if self.layout.run(r).run_json.exists())
        if missing:
            self.index.upsert(self.index_row(self.layout.run(run_id)) for run_id in missing)
        gone = indexed - on_disk
        if gone:
            self.index.delete(gone)
        if missing or gone:
            rows = self.index.rows()
        for row in rows:
            if row.attributes.get("status") == "running":
                paths = self.layout.run(row.run_id)
                if effective_status(row.attributes, paths.heartbeat) != "running":
                    row.attributes["status"] = self._status(paths, read_json(paths.run_json, {}) or {})
        return rows


def open_store(store: str | os.PathLike[str] | None, must_exist: bool = True) -> RunStore:
    """The store at ``store`` (default: :func:`~unitrack.store.layout.store_path`'s); with ``must_exist``,
    a clear error when there is none (a mistyped ``--store`` creates nothing)."""
    path = store_path(store)
    if must_exist and not path.exists():
        raise StoreError(f"no unitrack store at {path} (use --store or ${STORE_ENV})")
    return RunStore(path)

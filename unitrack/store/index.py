"""A SQLite index (WAL) of runs, their params, tags and metric summaries, for fast listing.

The run folders are the truth; the index is a cache of them that any process may rebuild
(``unitrack reindex``). Several processes write to it at once: each write is one short
``BEGIN IMMEDIATE`` transaction and waits for the others instead of failing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitrack.nonfinite import decode_number

SCHEMA_VERSION = 2  # 2: runs.error (the one-line reason a run failed)
_BUSY_TIMEOUT_S = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    name TEXT, experiment TEXT, status TEXT, message TEXT,
    start_time REAL, end_time REAL, git_commit TEXT, config_hash TEXT,
    host TEXT, pid INTEGER, pid_start_time REAL, error TEXT
);
CREATE TABLE IF NOT EXISTS params (run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS tags (run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT, key TEXT, last TEXT, last_step INTEGER, min TEXT, max TEXT, count INTEGER,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX IF NOT EXISTS runs_by_commit ON runs (git_commit);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (start_time);
"""
_RUN_COLUMNS = (
    "run_id", "name", "experiment", "status", "message", "start_time", "end_time",
    "git_commit", "config_hash", "host", "pid", "pid_start_time", "error",
)  # fmt: skip


def _triples(table: str, value: str) -> str:
    """A query giving ``[[run_id, key, <value>], ...]`` of ``table``, in its stored order, as one JSON
    text (``value`` is SQL that yields JSON text)."""
    return f"SELECT '[' || group_concat('[' || json_quote(run_id) || ',' || json_quote(key) || ',' || {value} || ']', ',') || ']' FROM {table}"


_NULL = "coalesce({}, 'null')"
_TRIPLES = (
    _triples("params", "value"),
    _triples("tags", "json_quote(value)"),
    _triples("metrics", "'[' || " + " || ',' || ".join(_NULL.format(c) for c in ("last", "last_step", "min", "max", "count")) + " || ']'"),
)


@dataclass
class IndexRow:
    """What the index knows of one run."""

    attributes: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.attributes["run_id"])


class RunIndex:
    """Read and write the index of one store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        if not self._ready:
            self._prepare(conn)
            self._ready = True
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}")  # the transaction stays open: one migrator
                    try:
                        self._migrate(conn)
                        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Bring an index made by an older unitrack (schema 1) to this schema, in the open transaction."""
        if "error" not in {row[1] for row in conn.execute("PRAGMA table_info(runs)")}:
            conn.execute("ALTER TABLE runs ADD COLUMN error TEXT")

    def upsert(self, rows: Iterable[IndexRow]) -> None:
        """Insert or replace runs (with their params, tags and metrics) in one transaction."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for row in rows:
                self._write(conn, row)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    @staticmethod
    def _write(conn: sqlite3.Connection, row: IndexRow) -> None:
        run_id = row.run_id
        values = [row.attributes.get(column) for column in _RUN_COLUMNS]
        placeholders = ",".join("?" * len(_RUN_COLUMNS))
        conn.execute(f"INSERT OR REPLACE INTO runs ({','.join(_RUN_COLUMNS)}) VALUES ({placeholders})", values)
        for table in ("params", "tags", "metrics"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        conn.executemany(
            "INSERT INTO params VALUES (?, ?, ?)",
            [(run_id, key, json.dumps(value)) for key, value in row.params.items()],
        )
        conn.executemany("INSERT INTO tags VALUES (?, ?, ?)", [(run_id, k, v) for k, v in row.tags.items()])
        conn.executemany(
            "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (run_id, key, json.dumps(s.get("last")), s.get("step"), json.dumps(s.get("min")),
                 json.dumps(s.get("max")), s.get("count"))
                for key, s in row.metrics.items()
            ],
        )

    def set_status(self, run_id: str, status: str) -> None:
        conn = self._connect()
        try:
            conn.execute("UPDATE runs SET status = ? WHERE run_id = ?", (status, run_id))
        finally:
            conn.close()

    def delete(self, run_ids: Iterable[str]) -> None:
        ids = [(run_id,) for run_id in run_ids]
        if not ids:
            return
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table in ("runs", "params", "tags", "metrics"):
                conn.executemany(f"DELETE FROM {table} WHERE run_id = ?", ids)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def clear(self) -> None:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table in ("runs", "params", "tags", "metrics"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("COMMIT")
        finally:
            conn.close()

    def run_ids(self) -> set[str]:
        conn = self._connect()
        try:
            return {r[0] for r in conn.execute("SELECT run_id FROM runs")}
        finally:
            conn.close()

    def rows(self) -> list[IndexRow]:
        """Every indexed run, oldest first.

        SQLite assembles each table as one JSON text that is parsed in one call: a thousand runs
        list in milliseconds instead of one ``json.loads`` per value. Values are stored as JSON
        already, so they are spliced in as they are.
        """
        conn = self._connect()
        try:
            runs = {
                r[0]: IndexRow(dict(zip(_RUN_COLUMNS, r, strict=True)))
                for r in conn.execute(f"SELECT {','.join(_RUN_COLUMNS)} FROM runs ORDER BY run_id")
            }
            params, tags, metrics = (json.loads(conn.execute(query).fetchone()[0] or "[]") for query in _TRIPLES)
        finally:
            conn.close()
        for run_id, key, value in params:
            if run_id in runs:
                runs[run_id].params[key] = value
        for run_id, key, value in tags:
            if run_id in runs:
                runs[run_id].tags[key] = value
        for run_id, key, (last, step, low, high, count) in metrics:
            if run_id in runs:  # NaN / inf are stored as "nan" / "inf" / "-inf": numbers again here
                last, low, high = (decode_number(v) if type(v) is str else v for v in (last, low, high))
                runs[run_id].metrics[key] = {"last": last, "step": step, "min": low, "max": high, "count": count}
        return list(runs.values())

    def integrity_check(self) -> str:
        conn = self._connect()
        try:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            conn.close()

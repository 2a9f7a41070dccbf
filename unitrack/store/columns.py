"""The columnar metric history beside the journal: per key, steps / values / times as raw
little-endian int64 / float64 / float64 files that numpy memory-maps without parsing.

``runs/<id>/history/``::

    index.json      which journal bytes it covers (offset + a fingerprint of the bytes before it),
                    per key its file number, point count and last point, the rewinds, the latest
                    artifact per name, the bytes of system.jsonl that are complete
    <n>.step        int64, every point of key n in the order it was logged (steps may go back)
    <n>.value       float64 (NaN / ±inf as themselves)
    <n>.time        float64, seconds since the epoch
    system.jsonl    the system-monitor samples, one ``{time, rank, values}`` a line

The journal stays the truth; the history never holds anything the journal does not. It is
only appended to: a commit writes the new points after the committed ones, then replaces
``index.json`` atomically, so a reader in another process — which reads ``index.json`` first and
then no more than the counts it names — always sees a consistent prefix. Whatever the journal
holds past ``offset`` (the last second of a running run, the tail a crash left) the reader parses
itself. Rewinds are kept as a list and applied on read, so no committed point ever changes.

Who commits: the run's writer at each flush (fed with the events it just appended, no JSON
parsed), or any reader that finds the history missing, stale or broken while no writer holds
``history/.lock`` (a crashed run, an older run, a run copied from another store).
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitrack.events import ArtifactEvent, Event, MetricEvent, SystemEvent
from unitrack.nonfinite import decode_number
from unitrack.store.fsio import atomic_write_bytes, read_json
from unitrack.store.layout import RunPaths

FORMAT = 1
_FINGERPRINT = 32  # journal bytes before ``offset`` kept in the index to notice a rewritten journal
_DTYPES = {"step": "<i8", "value": "<f8", "time": "<f8"}
_PACK = {"step": "q", "value": "d", "time": "d"}


@dataclass
class Column:
    """New points of one key, not yet committed."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    ints: bool = True  # every value an int: ``export`` prints them as ints, as the journal has them


@dataclass
class Pending:
    """What a journal range adds to the history."""

    columns: dict[str, Column] = field(default_factory=dict)
    rewinds: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    system: list[bytes] = field(default_factory=list)
    unreadable: int = 0

    def add(self, event: Event) -> None:
        if type(event) is MetricEvent:
            for key, value in event.values.items():
                self.point(key, event.step, value, event.time)
        elif type(event) is SystemEvent:
            sample = {"time": event.time, "rank": event.rank, "values": event.payload()["values"]}
            self.system.append(json.dumps(sample, separators=(",", ":")).encode() + b"\n")
        elif type(event) is ArtifactEvent:
            self.artifacts[event.name] = {"name": event.name, "path": event.path, "size": event.size, "sha256": event.sha256}
        elif event.kind == "rewind":
            self.rewinds.append({"time": float(event.time), "step": int(getattr(event, "data", {}).get("step", 0))})

    def add_record(self, record: dict[str, Any]) -> None:
        """The same as :meth:`add` for a parsed journal line (no event object made for metrics)."""
        kind = record.get("kind")
        try:
            if kind == "metric":
                step, when = int(record["step"]), float(record["time"])
                for key, value in record["values"].items():
                    self.point(key, step, decode_number(value), when)
            elif kind == "system":
                sample = {"time": record["time"], "rank": record.get("rank"), "values": record["values"]}
                self.system.append(json.dumps(sample, separators=(",", ":")).encode() + b"\n")
            elif kind == "artifact":
                name = record["name"]
                self.artifacts[name] = {"name": name, "path": record["path"], "size": record.get("size", 0), "sha256": record.get("sha256")}
            elif kind == "rewind":
                self.rewinds.append({"time": float(record["time"]), "step": int(record["step"])})
        except (KeyError, TypeError, ValueError, AttributeError):
            self.unreadable += 1

    def point(self, key: str, step: int, value: float | int, when: float) -> None:
        column = self.columns.get(key)
        if column is None:
            column = self.columns[key] = Column()
        column.steps.append(step)
        if type(value) is not int:
            column.ints = False
        column.values.append(value)
        column.times.append(when)

    def __bool__(self) -> bool:
        return bool(self.columns or self.rewinds or self.artifacts or self.system or self.unreadable)


def history_dir(run_dir: Path) -> Path:
    return RunPaths(Path(run_dir)).history


def empty_index() -> dict[str, Any]:
    return {"format": FORMAT, "offset": 0, "fingerprint": "", "keys": {}, "rewinds": [], "artifacts": {}, "system_bytes": 0, "unreadable": 0}


def _fingerprint(journal: Path, offset: int) -> str:
    if offset <= 0:
        return ""
    with open(journal, "rb") as handle:
        handle.seek(max(0, offset - _FINGERPRINT))
        return handle.read(min(offset, _FINGERPRINT)).hex()


def read_index(run_dir: Path, journal: Path) -> dict[str, Any] | None:
    """The committed index when it still describes ``journal`` (same bytes up to its offset), else None."""
    try:
        index = read_json(history_dir(run_dir) / "index.json")
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            return None
        offset = int(index.get("offset", -1))
        if offset < 0 or offset > journal.stat().st_size or _fingerprint(journal, offset) != index.get("fingerprint"):
            return None
        if not all(isinstance(index.get(k), t) for k, t in (("keys", dict), ("rewinds", list), ("artifacts", dict))):
            return None
    except (OSError, ValueError, TypeError):
        return None  # unreadable or not ours: rebuilt from the journal
    return index


def parse_journal(journal: Path, offset: int) -> tuple[Pending, int]:
    """What the journal's complete lines from ``offset`` add, and the offset after the last of them."""
    from unitrack.store.journal import iter_lines

    pending = Pending()
    end = offset
    for line, position in iter_lines(journal, offset):
        end = position
        try:
            record = json.loads(line)
        except ValueError:
            pending.unreadable += 1
            continue
        if isinstance(record, dict):
            pending.add_record(record)
        else:
            pending.unreadable += 1
    return pending, end


@contextmanager
def history_lock(run_dir: Path, blocking: bool = False) -> Iterator[bool]:
    """Hold ``history/.lock`` (True) or learn that someone else does (False): one committer at a time."""
    folder = history_dir(run_dir)
    try:
        folder.mkdir(exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def commit(run_dir: Path, journal: Path, index: dict[str, Any], pending: Pending, end_offset: int) -> dict[str, Any]:
    """Append ``pending`` after what ``index`` committed and publish the new index (caller holds the lock)."""
    folder = history_dir(run_dir)
    folder.mkdir(exist_ok=True)
    keys: dict[str, dict[str, Any]] = {k: dict(v) for k, v in index["keys"].items()}
    for key, column in pending.columns.items():
        entry = keys.get(key)
        if entry is None:
            entry = keys[key] = {"file": len(keys), "count": 0, "ints": True}
        count = int(entry["count"])
        for name, data in (("step", column.steps), ("value", column.values), ("time", column.times)):
            _append(folder / f"{entry['file']}.{name}", count * 8, struct.pack(f"<{len(data)}{_PACK[name]}", *data))
        entry["count"] = count + len(column.steps)
        entry["ints"] = bool(entry["ints"]) and column.ints
        entry["last"] = [column.steps[-1], _bits(column.values[-1])]
    system_bytes = int(index.get("system_bytes", 0))
    if pending.system:
        lines = b"".join(pending.system)
        _append(folder / "system.jsonl", system_bytes, lines)
        system_bytes += len(lines)
    new = {
        "format": FORMAT,
        "offset": end_offset,
        "fingerprint": _fingerprint(journal, end_offset),
        "keys": keys,
        "rewinds": [*index.get("rewinds", []), *pending.rewinds],
        "artifacts": {**index.get("artifacts", {}), **pending.artifacts},
        "system_bytes": system_bytes,
        "unreadable": int(index.get("unreadable", 0)) + pending.unreadable,
    }
    # key order (first logged first) and artifact order matter to readers: no sorted keys here
    atomic_write_bytes(folder / "index.json", json.dumps(new, separators=(",", ":")).encode(), durable=False)
    return new


def _bits(value: float | int) -> str:
    """A float's exact bit pattern (NaN-safe) for the index's check of a column's last point."""
    return struct.pack("<d", float(value)).hex()


def _append(path: Path, at: int, data: bytes) -> None:
    """Write ``data`` at byte ``at`` of ``path``, dropping whatever an interrupted commit left past it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size != at:
            os.ftruncate(fd, at)
        view = memoryview(data)
        written = 0
        while written < len(data):
            written += os.pwrite(fd, view[written:], at + written)
    finally:
        os.close(fd)


def catch_up(run_dir: Path, journal: Path) -> dict[str, Any] | None:
    """Bring the history up to the journal's last complete line, when no one else is committing;
    rebuild it from scratch when it is missing or no longer matches the journal. Returns the new
    index, or None when another process holds the lock (or the folder is read-only)."""
    with history_lock(run_dir) as held:
        if not held:
            return None
        index = read_index(run_dir, journal)
        fresh = index is None or not verify_columns(run_dir, index)
        if fresh or index is None:
            index = empty_index()
        pending, end = parse_journal(journal, int(index["offset"]))
        if not fresh and end == index["offset"]:
            return index
        try:
            return commit(run_dir, journal, index, pending, end)
        except OSError:
            return None


def verify_columns(run_dir: Path, index: dict[str, Any]) -> bool:
    """True when every column file holds at least its committed points and ends with the recorded
    last point (a power loss after the index was renamed could leave zeros instead)."""
    folder = history_dir(run_dir)
    for entry in index["keys"].values():
        try:
            count = int(entry["count"])
            with open(folder / f"{entry['file']}.step", "rb") as steps, open(folder / f"{entry['file']}.value", "rb") as values:
                if os.fstat(steps.fileno()).st_size < count * 8 or os.fstat(values.fileno()).st_size < count * 8:
                    return False
                if count and "last" in entry:
                    steps.seek((count - 1) * 8)
                    values.seek((count - 1) * 8)
                    step = struct.unpack("<q", steps.read(8))[0]
                    if [step, values.read(8).hex()] != list(entry["last"]):
                        return False
            if os.path.getsize(folder / f"{entry['file']}.time") < count * 8:
                return False
        except (OSError, KeyError, TypeError, ValueError):
            return False
    return True


class HistoryWriter:
    """The writer's side: fed the events the run's writer appended, committed at each flush.

    It holds the history lock for the run's lifetime (readers then parse the last second of the
    journal themselves instead of committing it). Any failure turns it off: the history is only
    a cache, and the next reader rebuilds it from the journal.
    """

    def __init__(self, run_dir: Path, journal: Path) -> None:
        self.run_dir = Path(run_dir)
        self.journal = journal
        self._fd = -1
        self._index: dict[str, Any] | None = None
        self._pending = Pending()
        self._end = 0

    def open(self, journal_offset: int) -> None:
        try:
            folder = history_dir(self.run_dir)
            folder.mkdir(exist_ok=True)
            self._fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()  # someone else is committing: leave the history to the readers
            return
        try:
            index = read_index(self.run_dir, self.journal)
            if index is None or not verify_columns(self.run_dir, index):
                index = empty_index()
            pending, end = parse_journal(self.journal, int(index["offset"]))
            if end != journal_offset:  # lines it could not make sense of: start over from the journal
                index = empty_index()
                pending, end = parse_journal(self.journal, 0)
            self._index, self._pending, self._end = index, pending, end
            self.commit()
        except (OSError, ValueError) as exc:
            self._give_up(exc)

    def add(self, events: Iterable[Event], end_offset: int) -> None:
        """The events just appended to the journal, which now ends at ``end_offset``."""
        if self._index is None:
            return
        add = self._pending.add
        for event in events:
            add(event)
        self._end = end_offset

    def commit(self) -> None:
        if self._index is None or (not self._pending and self._end == self._index["offset"]):
            return
        try:
            self._index = commit(self.run_dir, self.journal, self._index, self._pending, self._end)
        except (OSError, ValueError) as exc:
            self._give_up(exc)
            return
        self._pending = Pending()

    def close(self) -> None:
        self.commit()
        self._index = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _give_up(self, exc: BaseException) -> None:
        import logging

        logging.getLogger("unitrack").warning(
            "unitrack: the columnar history of %s is off for this run (%s); readers rebuild it from the journal", self.run_dir, exc
        )
        self._index = None
        self._pending = Pending()

"""The run journal: one JSON event per line, append-only, the source of truth of a run.

A process killed mid-write leaves at most a torn last line with no newline. Readers stop
before it; a writer reopening the journal (a resumed run, ``unitrack sync``) cuts it off first,
so the file never holds a broken line in the middle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from unitrack.events import Event

_READ_CHUNK = 1 << 20


class JournalSink(Protocol):
    """Where the dispatcher's writer thread puts numbered events: the run's journal
    (:class:`unitrack.store.writer.RunWriter`) or, on a distributed follower, its rank's own journal."""

    @property
    def journal_offset(self) -> int:
        """Bytes of the journal written so far: where the backend workers may read up to."""
        ...

    def open(self) -> None:
        """Open (or reopen, repairing a torn tail) the journal for appending."""

    def write(self, events: Sequence[Event]) -> None:
        """Append a batch of numbered events (raise OSError when the disk refuses: the batch is kept and retried)."""

    def flush(self) -> None:
        """Make everything written durable."""

    def add_dropped(self, count: int) -> None:
        """Count events the full queue dropped before they reached the journal."""


def repair_torn_tail(path: Path) -> int:
    """Cut a torn last line (no trailing newline) off ``path``; return the bytes removed."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "r+b") as handle:
        end = size
        while end > 0:
            start = max(0, end - _READ_CHUNK)
            handle.seek(start)
            block = handle.read(end - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        else:
            keep = 0
        if keep < size:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        return size - keep


class JournalWriter:
    """Appends encoded lines straight to the file, so readers see them at once; ``sync`` makes them durable.

    A failed write (a full disk) is cut back to the last complete line before the error is
    raised, so a later successful append never follows a broken line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        repair_torn_tail(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._offset = os.fstat(self._fd).st_size

    @property
    def offset(self) -> int:
        """Bytes in the journal: where the next line starts."""
        return self._offset

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, view[written:])
        except OSError:
            if written:
                os.ftruncate(self._fd, self._offset)
            raise
        self._offset += len(data)

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1


@dataclass
class JournalChunk:
    """Records read from a journal, and where the next read starts."""

    records: list[dict[str, Any]] = field(default_factory=list)
    end_offset: int = 0
    unreadable_lines: int = 0


def read_journal(path: Path, offset: int = 0, max_records: int | None = None) -> JournalChunk:
    """Read complete lines from ``offset``; a torn last line is left for a later read."""
    chunk = JournalChunk(end_offset=offset)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - opened apart so that only a missing file is caught; closed by the with below
    except FileNotFoundError:
        return chunk
    with handle:
        handle.seek(offset)
        leftover = b""
        while max_records is None or len(chunk.records) < max_records:
            data = handle.read(_READ_CHUNK)
            if not data:
                break
            lines = (leftover + data).split(b"\n")
            leftover = lines.pop()
            for line in lines:
                chunk.end_offset += len(line) + 1
                if line.strip():
                    try:
                        chunk.records.append(json.loads(line))
                    except ValueError:
                        chunk.unreadable_lines += 1
                if max_records is not None and len(chunk.records) >= max_records:
                    return chunk
    return chunk


def iter_lines(path: Path, offset: int = 0) -> Iterator[tuple[bytes, int]]:
    """Every complete, non-empty line from byte ``offset`` with the offset just after it; a torn
    last line (no newline yet) is left out."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            leftover = b""
            position = offset
            while data := handle.read(_READ_CHUNK):
                lines = (leftover + data).split(b"\n")
                leftover = lines.pop()
                for line in lines:
                    position += len(line) + 1
                    if line.strip():
                        yield line, position
    except FileNotFoundError:
        return


def iter_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Every readable record of a journal, in order."""
    offset = 0
    while True:
        chunk = read_journal(path, offset, max_records=50_000)
        yield from chunk.records
        if chunk.end_offset == offset:
            return
        offset = chunk.end_offset


def last_record(path: Path) -> dict[str, Any] | None:
    """The last complete, readable record of a journal, read from its end."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - opened apart so that only a missing file is caught; closed by the with below
    except FileNotFoundError:
        return None
    with handle:
        end = handle.seek(0, os.SEEK_END)
        window = 4096
        while True:
            start = max(0, end - window)
            handle.seek(start)
            lines = handle.read(end - start).split(b"\n")
            complete = lines[1:-1] if start > 0 else lines[:-1]
            for line in reversed(complete):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
            if start == 0:
                return None
            window *= 4

"""The journal writer: the queue the training thread appends to, and the thread that empties it.

The training thread only appends events to ``Dispatcher.queue`` (a deque: no lock, no I/O).
The writer thread numbers them (a 0-d tensor becomes a float here, never in the training loop),
appends them to the journal through its :class:`~unitrack.store.journal.JournalSink` and makes
the journal durable at least every ``flush_interval`` seconds. The backend workers
(:mod:`unitrack.dispatch.worker`) tail the journal it writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from unitrack.dispatch.worker import BackendWorker
from unitrack.events import Event, MetricEvent
from unitrack.store.journal import JournalSink, last_record
from unitrack.store.layout import RunPaths

if TYPE_CHECKING:
    from unitrack.config import TrackingConfig

log = logging.getLogger("unitrack")

_CHUNK = 512  # events materialised per writer step: bounds how long the writer holds the GIL
_POLL_S = 0.05
_DROP_WARN_EVERY = 10_000


@dataclass(frozen=True, slots=True)
class FlushRequest:
    """Put in the queue by ``flush()``: set once everything before it is durable."""

    done: threading.Event


QueueItem = Event | FlushRequest


def to_number(value: Any) -> float | int:
    """A Python number from a float, int, bool, NumPy scalar or one-element tensor."""
    item = getattr(value, "item", None)
    if item is not None:
        value = item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    return float(value)


def convert_values(events: Sequence[Event]) -> None:
    """Replace tensors and NumPy scalars in metric events by Python numbers, in place.

    This is the writer thread's job, never the training loop's. CUDA scalars are read with one
    device-to-host copy per device for the whole batch instead of one synchronisation each.
    """
    slow: list[tuple[dict[str, Any], str]] = []
    for event in events:
        if type(event) is MetricEvent:
            for key, value in event.values.items():
                if type(value) is not float and type(value) is not int:
                    slow.append((event.values, key))
    if not slow:
        return
    by_device: dict[Any, list[tuple[dict[str, Any], str]]] = {}
    for values, key in slow:
        value = values[key]
        if getattr(value, "is_cuda", False):
            by_device.setdefault(value.device, []).append((values, key))
        else:
            values[key] = to_number(value)
    if by_device:
        import torch

        for slots in by_device.values():
            stacked = torch.stack([values[key].detach().reshape(()).to(torch.float64) for values, key in slots])
            for (values, key), number in zip(slots, stacked.tolist(), strict=True):
                values[key] = number


class Dispatcher:
    """Owns the event queue, the journal writer thread and the backend workers of one run."""

    def __init__(
        self,
        paths: RunPaths,
        sink: JournalSink,
        workers: Sequence[BackendWorker],
        flush_interval: float,
        queue_size: int,
        queue_full: str,
        queue_block_timeout: float,
    ) -> None:
        self.queue: deque[QueueItem] = deque()
        self.queue_size = queue_size
        self._sink = sink
        self._flush_interval = flush_interval
        self._queue_full = queue_full
        self._queue_block_timeout = queue_block_timeout
        last = last_record(paths.events)
        self._seq = int(last["seq"]) if last else 0
        self._wake = threading.Event()
        self._stopping = False
        self._pending: list[Event] = []
        self.dropped = 0
        self.write_errors = 0
        self.last_write_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="unitrack-writer", daemon=True)
        self.workers = list(workers)

    @classmethod
    def from_config(
        cls, paths: RunPaths, sink: JournalSink, workers: Sequence[BackendWorker], tracking: TrackingConfig
    ) -> Dispatcher:
        """The dispatcher of a run, with the queue and flush settings of ``tracking``."""
        return cls(
            paths,
            sink,
            workers,
            flush_interval=tracking.flush_interval,
            queue_size=tracking.queue_size,
            queue_full=tracking.queue_full,
            queue_block_timeout=tracking.queue_block_timeout,
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the journal (it needs no wait for captures) and start the threads."""
        self._sink.open()
        self._thread.start()
        for worker in self.workers:
            worker.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is durable in the local store."""
        if not self._thread.is_alive():
            return not self.queue
        done = threading.Event()
        self.queue.append(FlushRequest(done))
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float) -> dict[str, dict[str, Any]]:
        """Drain the queue, then give the workers until ``timeout`` to catch up; return their states."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        self._thread.join(max(1.0, deadline - time.monotonic()))
        end_offset = self._sink.journal_offset
        for worker in self.workers:
            worker.request_close(end_offset, deadline)
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()) + 2.0)
        return {worker.backend.name: worker.state_dict(self._seq) for worker in self.workers}

    # --- the hot path's overflow policy ---------------------------------------------------------

    def make_room(self) -> bool:
        """Called when the queue is full: True when the caller may enqueue, False to drop the event."""
        if self._queue_full == "block" and self._thread.is_alive():
            self._wake.set()
            deadline = time.monotonic() + self._queue_block_timeout
            while len(self.queue) >= self.queue_size and time.monotonic() < deadline:
                time.sleep(0.001)
            if len(self.queue) < self.queue_size:
                return True
        self.dropped += 1
        self._sink.add_dropped(1)
        if self.dropped == 1 or self.dropped % _DROP_WARN_EVERY == 0:
            log.warning(
                "unitrack: the event queue is full (%d events); %d event(s) dropped so far "
                "(tracking.queue_full=%s). The local disk may be stalled.",
                self.queue_size,
                self.dropped,
                self._queue_full,
            )
        return False

    # --- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        last_sync = time.monotonic()
        while True:
            self._wake.wait(_POLL_S)
            self._wake.clear()
            markers = self._drain()
            now = time.monotonic()
            if markers or now - last_sync >= self._flush_interval:
                if self._write_pending() and self._sync():
                    for marker in markers:
                        marker.set()
                    last_sync = now
                else:
                    self.queue.extendleft(reversed([FlushRequest(m) for m in markers]))
            if self._stopping and not self.queue and (not self._pending or self.write_errors > 100):
                self._sync()
                return

    def _drain(self) -> list[threading.Event]:
        """Write what the queue holds, a chunk at a time; return the flush markers met."""
        markers: list[threading.Event] = []
        queue = self.queue
        while queue and not self._pending:
            events: list[Event] = []
            for _ in range(min(len(queue), _CHUNK)):
                item = queue.popleft()
                if type(item) is FlushRequest:
                    markers.append(item.done)
                else:
                    events.append(item)  # type: ignore[arg-type]  # not a FlushRequest: an Event
            if events:
                self._pending = self._number(events)
                if not self._write_pending():
                    break
            time.sleep(0)  # let the training thread have the GIL between chunks
        return markers

    def _number(self, events: list[Event]) -> list[Event]:
        """Make every value a number and give each event its sequence number."""
        try:
            convert_values(events)
        except Exception:  # convert one by one below, so that one bad value loses only its event
            pass
        numbered: list[Event] = []
        for event in events:
            if type(event) is MetricEvent:
                try:
                    values = event.values
                    for key, value in values.items():
                        if type(value) is not float and type(value) is not int:
                            values[key] = to_number(value)
                except Exception as exc:  # a value that cannot become a number: lose it loudly, not the run
                    log.warning("unitrack: could not record metric event: %s", exc)
                    continue
            self._seq += 1
            event.seq = self._seq
            numbered.append(event)
        return numbered

    def _write_pending(self) -> bool:
        if not self._pending:
            return True
        try:
            self._sink.write(self._pending)
        except OSError as exc:
            self._note_write_error(exc)
            return False
        self._pending = []
        for worker in self.workers:
            worker.notify()
        return True

    def _sync(self) -> bool:
        try:
            self._sink.flush()
            return True
        except OSError as exc:
            self._note_write_error(exc)
            return False

    def _note_write_error(self, exc: OSError) -> None:
        self.write_errors += 1
        self.last_write_error = f"{type(exc).__name__}: {exc}"
        if self.write_errors == 1 or self.write_errors % 100 == 0:
            log.warning(
                "unitrack: cannot write the run journal (%s); events are kept in memory and retried",
                self.last_write_error,
            )
        time.sleep(0.05)


def warn_undelivered(run_id: str, states: dict[str, dict[str, Any]]) -> None:
    """At a run's close, say which backends it left out of sync (``Dispatcher.close``'s states) and what mends it."""
    for backend, state in states.items():
        if state.get("owed"):
            log.warning(
                "unitrack: backend %r still owes %d event(s) of run %s; `unitrack sync %s` delivers them",
                backend,
                state["owed"],
                run_id,
                run_id,
            )
        if state.get("skipped_events"):
            log.warning(
                "unitrack: backend %r refused %d event(s) of run %s for good: it is not in sync "
                "(they are kept in the local store)",
                backend,
                state["skipped_events"],
                run_id,
            )

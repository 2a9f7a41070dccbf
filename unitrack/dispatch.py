"""Off the hot path: the journal writer and one delivery worker per remote backend.

The training thread only appends tuples to ``Dispatcher.queue`` (a deque: no lock, no I/O).
The writer thread turns them into events (a 0-d tensor becomes a float here, never in the
training loop), numbers them, appends them to the journal through the local backend and makes
the journal durable at least every ``flush_interval`` seconds.

Every remote backend has a :class:`BackendWorker` that tails the journal from its own
persisted cursor, batches within the backend's limits, retries with exponential back-off and
jitter, and opens a circuit breaker when the backend stays down. Nothing a backend raises
reaches the training loop; what a backend has not acknowledged stays owed in the journal and
is replayed by the next worker that starts from the cursor (``unitrack sync``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from unitrack.backends.base import Backend, PermanentBackendError, RunInfo
from unitrack.backends.local import LocalBackend
from unitrack.backends.shaping import is_delivered_alone
from unitrack.events import (
    ArtifactEvent,
    Event,
    MetricEvent,
    ParamsEvent,
    RecordEvent,
    StatusEvent,
    SystemEvent,
    TagsEvent,
    event_from_record,
)
from unitrack.store.fsio import atomic_write_json, read_json
from unitrack.store.history import in_sync
from unitrack.store.journal import last_record, read_journal
from unitrack.store.layout import RunPaths

log = logging.getLogger("unitrack")

FLUSH = "flush"
_CHUNK = 512  # events materialised per writer step: bounds how long the writer holds the GIL
_POLL_S = 0.05
_WORKER_POLL_S = 0.5
_DROP_WARN_EVERY = 10_000


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


def convert_values(records: list[tuple[Any, ...]]) -> None:
    """Replace tensors and NumPy scalars in metric records by Python numbers, in place.

    This is the writer thread's job, never the training loop's. CUDA scalars are read with one
    device-to-host copy per device for the whole batch instead of one synchronisation each.
    """
    slow: list[tuple[dict[str, Any], str]] = []
    for record in records:
        if record[0] == "metric":
            for key, value in record[3].items():
                if type(value) is not float and type(value) is not int:
                    slow.append((record[3], key))
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
        local: LocalBackend,
        remotes: Sequence[Backend],
        run_info: Callable[[], RunInfo],
        flush_interval: float,
        queue_size: int,
        queue_full: str,
        queue_block_timeout: float,
        worker_settings: WorkerSettings,
    ) -> None:
        self.queue: deque[tuple[Any, ...]] = deque()
        self.queue_size = queue_size
        self._paths = paths
        self._local = local
        self._run_info = run_info
        self._flush_interval = flush_interval
        self._queue_full = queue_full
        self._queue_block_timeout = queue_block_timeout
        last = last_record(paths.events)
        self._seq = int(last["seq"]) if last else 0
        self._wake = threading.Event()
        self._stopping = False
        self._pending: list[Event] = []
        self.write_errors = 0
        self.last_write_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="unitrack-writer", daemon=True)
        self.workers = [BackendWorker(backend, paths, run_info, worker_settings) for backend in remotes]

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, local_info: RunInfo) -> None:
        """Open the local store (it needs no wait for captures) and start the threads."""
        self._local.open(local_info)
        self._thread.start()
        for worker in self.workers:
            worker.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is durable in the local store."""
        if not self._thread.is_alive():
            return not self.queue
        done = threading.Event()
        self.queue.append((FLUSH, done))
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float) -> dict[str, dict[str, Any]]:
        """Drain the queue, then give the workers until ``timeout`` to catch up; return their states."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        self._thread.join(max(1.0, deadline - time.monotonic()))
        end_offset = self._local.journal_offset
        for worker in self.workers:
            worker.request_close(end_offset, deadline)
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()) + 2.0)
        return {worker.backend.name: worker.state_dict(self._seq) for worker in self.workers}

    @property
    def last_seq(self) -> int:
        return self._seq

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
        self._local.dropped_events += 1
        dropped = self._local.dropped_events
        if dropped == 1 or dropped % _DROP_WARN_EVERY == 0:
            log.warning(
                "unitrack: the event queue is full (%d events); %d event(s) dropped so far "
                "(tracking.queue_full=%s). The local disk may be stalled.",
                self.queue_size,
                dropped,
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
                    self.queue.extendleft(reversed([(FLUSH, m) for m in markers]))
            if self._stopping and not self.queue and (not self._pending or self.write_errors > 100):
                self._sync()
                return

    def _drain(self) -> list[threading.Event]:
        """Write what the queue holds, a chunk at a time; return the flush markers met."""
        markers: list[threading.Event] = []
        queue = self.queue
        while queue and not self._pending:
            records = []
            for _ in range(min(len(queue), _CHUNK)):
                record = queue.popleft()
                if record[0] == FLUSH:
                    markers.append(record[1])
                else:
                    records.append(record)
            if records:
                self._pending = self._materialize(records)
                if not self._write_pending():
                    break
            time.sleep(0)  # let the training thread have the GIL between chunks
        return markers

    def _materialize(self, records: list[tuple[Any, ...]]) -> list[Event]:
        try:
            convert_values(records)
        except Exception:  # convert one by one below, so that one bad value loses only its event
            pass
        events: list[Event] = []
        for record in records:
            try:
                event = self._event(record)
            except Exception as exc:  # a value that cannot become a number: lose it loudly, not the run
                log.warning("unitrack: could not record %s event: %s", record[0], exc)
                continue
            events.append(event)
        return events

    def _event(self, record: tuple[Any, ...]) -> Event:
        kind = record[0]
        self._seq += 1
        seq = self._seq
        if kind == "metric":
            values = record[3]
            for key, value in values.items():
                if type(value) is not float and type(value) is not int:
                    values[key] = to_number(value)
            return MetricEvent(seq, record[2], record[1], values)
        if kind == "system":
            return SystemEvent(seq, record[1], record[2], record[3])
        if kind == "params":
            return ParamsEvent(seq, record[1], record[2])
        if kind == "tags":
            return TagsEvent(seq, record[1], record[2])
        if kind == "artifact":
            return ArtifactEvent(seq, record[1], *record[2:])
        if kind == "status":
            return StatusEvent(seq, record[1], record[2])
        if kind == "record":
            return RecordEvent(seq, record[1], record[2], record[3])
        self._seq -= 1
        raise ValueError(f"unknown event kind {kind!r}")

    def _write_pending(self) -> bool:
        if not self._pending:
            return True
        try:
            self._local.write(self._pending)
        except OSError as exc:
            self._note_write_error(exc)
            return False
        self._pending = []
        for worker in self.workers:
            worker.notify()
        return True

    def _sync(self) -> bool:
        try:
            self._local.flush()
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


@dataclass(frozen=True)
class WorkerSettings:
    batch_size: int = 5000
    retry_attempts: int = 4
    retry_max_wait: float = 8.0
    breaker_cooldown: float = 15.0


@dataclass
class DeliveryState:
    """How far one backend has got, kept in its cursor file and reported in ``run.json``."""

    offset: int = 0
    seq: int = 0
    started: bool = False
    start_error: str | None = None
    errors: int = 0
    last_error: str | None = None
    skipped_events: int = 0
    closed: bool = False


class _Aborted(Exception):
    """The run's deadline for this backend passed while waiting to retry."""


class BackendWorker:
    """Feeds one backend from the journal, from its persisted cursor onwards."""

    def __init__(self, backend: Backend, paths: RunPaths, run_info: Callable[[], RunInfo], settings: WorkerSettings):
        self.backend = backend
        self.paths = paths
        self._run_info = run_info
        self._settings = settings
        saved = read_json(paths.cursor(backend.name), {}) or {}
        self.state = DeliveryState(offset=int(saved.get("offset", 0)), seq=int(saved.get("seq", 0)))
        self.state.skipped_events = int(saved.get("skipped_events", 0))
        self._wake = threading.Event()
        self._abort = threading.Event()
        self._closing = False
        self._close_offset: int | None = None
        self._deadline = float("inf")
        self._status: str | None = None
        self._breaker_until = 0.0
        self._failures_in_row = 0
        self._acknowledged: set[int] = set()  # first seqs of batches delivered beyond the cursor
        self._pool: ThreadPoolExecutor | None = None
        self._thread = threading.Thread(target=self._run, name=f"unitrack-{backend.name}", daemon=True)

    # --- control from the dispatcher ------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def request_close(self, end_offset: int, deadline: float, status: str | None = None) -> None:
        self._close_offset = end_offset
        self._deadline = deadline
        self._status = status
        self._closing = True
        self._breaker_until = 0.0  # one more try at finish, even if the breaker was open
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()

    def state_dict(self, last_seq: int) -> dict[str, Any]:
        state = asdict(self.state)
        state["owed"] = max(0, last_seq - self.state.seq)
        state["in_sync"] = in_sync(state["owed"], self.state.started, self.state.skipped_events)
        return state

    def run_until_caught_up(self, deadline: float, status: str | None) -> DeliveryState:
        """Deliver everything the journal holds now, on the calling thread (``unitrack sync``)."""
        self.request_close(self.paths.events.stat().st_size if self.paths.events.exists() else 0, deadline, status)
        self._run()
        return self.state

    # --- the worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if not self._open():
                return
            while True:
                progressed = self._deliver_available()
                if self._closing and (self._caught_up() or time.monotonic() >= self._deadline):
                    break
                if not progressed:
                    self._wake.wait(_WORKER_POLL_S)
                    self._wake.clear()
            self._close_backend()
        except _Aborted:
            pass
        except Exception as exc:  # the worker must never die noisily into the training process
            self._record_error(exc)
        finally:
            self._save_cursor(durable=True)
            if self._pool is not None:
                self._pool.shutdown(wait=False)

    def _open(self) -> bool:
        try:
            self._retrying(lambda: self.backend.open(self._run_info()))
        except Exception as exc:  # _Aborted too: still not started when the run's deadline came
            self.state.start_error = self.state.last_error if isinstance(exc, _Aborted) else None
            self.state.start_error = self.state.start_error or f"{type(exc).__name__}: {exc}"
            if isinstance(exc, _Aborted):
                self.state.start_error = f"not started before the deadline; last error: {self.state.start_error}"
            log.warning(
                "unitrack: backend %r could not start (%s); the run goes on with the local store, "
                "and `unitrack sync %s` can deliver it later",
                self.backend.name,
                self.state.start_error,
                self.paths.run_id,
            )
            return False
        self.state.started = True
        return True

    def _caught_up(self) -> bool:
        return self._close_offset is not None and self.state.offset >= self._close_offset

    def _deliver_available(self) -> bool:
        if time.monotonic() < self._breaker_until:
            return False
        chunk = read_journal(self.paths.events, self.state.offset, self._settings.batch_size)
        if not chunk.records:
            if chunk.end_offset > self.state.offset:  # only blank or unreadable lines
                self.state.offset = chunk.end_offset
            return False
        done = self._acknowledged
        events = [
            event_from_record(r) for r in chunk.records if int(r.get("seq", 0)) > self.state.seq and r["seq"] not in done
        ]
        try:
            window: list[list[Event]] = []
            for group in self._groups(events):
                if self._order_free(group):
                    window.append(group)
                    if len(window) < self._concurrency:
                        continue
                self._deliver_window(window)
                window = []
                if not self._order_free(group):
                    self._deliver_acknowledged(group)
            self._deliver_window(window)
        except (_Aborted, KeyboardInterrupt):
            raise
        except Exception as exc:
            self._record_error(exc)
            self._open_breaker()
            self._save_cursor(durable=True)
            return False
        self._failures_in_row = 0
        self._acknowledged.clear()
        self.state.offset = chunk.end_offset
        self._save_cursor(durable=True)
        return True

    @property
    def _concurrency(self) -> int:
        return max(1, self.backend.capabilities.concurrent_writes)

    def _order_free(self, group: list[Event]) -> bool:
        """Metric and system batches may travel side by side when the backend does not care about order."""
        return self._concurrency > 1 and all(type(e) in (MetricEvent, SystemEvent) for e in group)

    def _deliver_window(self, window: list[list[Event]]) -> None:
        """Deliver several order-free batches at once; the cursor moves past those acknowledged in a row."""
        if len(window) <= 1:
            for group in window:
                self._deliver_acknowledged(group)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix=f"unitrack-{self.backend.name}")
        futures = [(group, self._pool.submit(self._deliver_retrying, group)) for group in window]
        failure: BaseException | None = None
        acknowledged = []
        for group, future in futures:
            try:
                future.result()
                acknowledged.append(group)
            except BaseException as exc:
                failure = failure or exc
        for group in window:  # the cursor only moves over an unbroken run of acknowledged batches
            if group is not (acknowledged[0] if acknowledged else None):
                break
            acknowledged.pop(0)
            self.state.seq = max(self.state.seq, group[-1].seq)
        for group in acknowledged:  # delivered beyond a failed batch: not sent again by this worker
            self._acknowledged.update(event.seq for event in group)
        if failure is not None:
            raise failure
        self._save_cursor()

    def _deliver_acknowledged(self, group: list[Event]) -> None:
        self._deliver_retrying(group)
        self.state.seq = group[-1].seq
        self._save_cursor()

    def _deliver_retrying(self, group: list[Event]) -> None:
        try:
            self._retrying(lambda: self._deliver(group))
        except PermanentBackendError:
            self._deliver_one_by_one(group)

    def _groups(self, events: list[Event]) -> Iterator[list[Event]]:
        """Split events into deliveries: artifacts and checkpoints alone, the rest within the backend's limits."""
        caps = self.backend.capabilities
        batch: list[Event] = []
        values = params = 0
        for event in events:
            if isinstance(event, ArtifactEvent) or is_delivered_alone(event):
                if batch:
                    yield batch
                    batch, values, params = [], 0, 0
                if caps.supports_artifacts or not isinstance(event, ArtifactEvent):
                    yield [event]
                continue
            size = len(event.values) if isinstance(event, (MetricEvent, SystemEvent)) else 0
            psize = len(event.values) if isinstance(event, (ParamsEvent, TagsEvent)) else 0
            over_values = caps.max_metric_values_per_write and values + size > caps.max_metric_values_per_write
            over_params = caps.max_params_per_write and params + psize > caps.max_params_per_write
            if batch and (over_values or over_params):
                yield batch
                batch, values, params = [], 0, 0
            batch.append(event)
            values += size
            params += psize
        if batch:
            yield batch

    def _deliver(self, group: list[Event]) -> None:
        first = group[0]
        if isinstance(first, ArtifactEvent):
            self.backend.put_artifact(self.paths.root / first.path, first.name)
        else:
            self.backend.write(group)

    def _deliver_one_by_one(self, group: list[Event]) -> None:
        """A batch was refused for good: deliver its events alone, skipping only those refused again."""
        for event in group:
            try:
                self._retrying(functools.partial(self._deliver, [event]))
            except PermanentBackendError as exc:
                self.state.skipped_events += 1
                self._record_error(exc)
                log.warning(
                    "unitrack: backend %r refused event %d (%s) for good: %s; it stays in the journal",
                    self.backend.name,
                    event.seq,
                    event.kind,
                    exc,
                )

    def _close_backend(self) -> None:
        try:
            self.backend.flush()
            self.backend.close(self._status or self._final_status())
            self.state.closed = True
        except Exception as exc:
            self._record_error(exc)

    def _final_status(self) -> str:
        last = last_record(self.paths.events)
        return str(last.get("status")) if last and last.get("kind") == "status" else "completed"

    # --- retries and the breaker --------------------------------------------------------------

    def _retrying(self, call: Callable[[], None]) -> None:
        from tenacity import Retrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential_jitter

        attempts = self._settings.retry_attempts
        if self._closing:
            attempts = min(attempts, 2)  # at finish, fail fast: what is left stays owed
        for attempt in Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential_jitter(
                multiplier=0.25, max=self._settings.retry_max_wait, jitter=min(0.5, self._settings.retry_max_wait)
            ),
            retry=retry_if_not_exception_type((PermanentBackendError, _Aborted)),
            sleep=self._sleep,
            before_sleep=self._note_retry,
            reraise=True,
        ):
            with attempt:
                call()

    def _note_retry(self, retry: Any) -> None:
        error = retry.outcome.exception() if retry.outcome is not None else None
        if error is not None:
            self._record_error(error)

    def _sleep(self, seconds: float) -> None:
        remaining = self._deadline - time.monotonic()
        if self._abort.wait(min(seconds, max(0.0, remaining))) or (self._closing and remaining <= seconds):
            raise _Aborted()

    def _open_breaker(self) -> None:
        self._failures_in_row += 1
        cooldown = self._settings.breaker_cooldown * min(8, 2 ** (self._failures_in_row - 1))
        self._breaker_until = time.monotonic() + cooldown
        if self._failures_in_row == 1:
            log.warning(
                "unitrack: backend %r is failing (%s); its events wait in the journal, next try in %.0f s",
                self.backend.name,
                self.state.last_error,
                cooldown,
            )

    def _record_error(self, exc: BaseException) -> None:
        self.state.errors += 1
        self.state.last_error = f"{type(exc).__name__}: {exc}"[:500]

    def _save_cursor(self, durable: bool = False) -> None:
        """Write the cursor after every acknowledged batch: atomically always (a killed process
        leaves it exact), fsynced at the end of each journal chunk and at close."""
        data = {"offset": self.state.offset, "seq": self.state.seq, "skipped_events": self.state.skipped_events}
        try:
            atomic_write_json(self.paths.cursor(self.backend.name), data, durable=durable)
        except OSError as exc:
            self._record_error(exc)

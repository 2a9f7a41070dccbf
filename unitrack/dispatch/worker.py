"""One delivery worker per remote backend: it tails the run's journal from its own persisted cursor.

A :class:`BackendWorker` batches within the backend's :class:`~unitrack.backends.base.Capabilities`,
retries with exponential back-off and jitter, and opens a circuit breaker when the backend stays
down. It also owns what every backend would otherwise repeat: artifacts go to ``put_artifact``
only where the backend supports them (a ``NotImplementedError`` there means "not supported",
never a transient failure), and checkpoints are uploaded by the policy of
``checkpointing.upload`` (best, last, all or none). Nothing a backend raises reaches the training
loop; what a backend has not acknowledged stays owed in the journal and is replayed by the next
worker that starts from the cursor (``unitrack sync``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.backends.base import Backend, PermanentBackendError, RunInfo
from unitrack.events import (
    CHECKPOINT,
    REGISTER_MODEL,
    ArtifactEvent,
    Event,
    MetricEvent,
    ParamsEvent,
    RecordEvent,
    SystemEvent,
    TagsEvent,
    event_from_record,
)
from unitrack.store.fsio import atomic_write_json, read_json
from unitrack.store.history import in_sync
from unitrack.store.journal import last_record, read_journal
from unitrack.store.layout import RunPaths

if TYPE_CHECKING:
    from unitrack.config import Config

log = logging.getLogger("unitrack")

_WORKER_POLL_S = 0.5
DEFAULT_CHECKPOINT_UPLOAD = "best"


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker delivers to its backend; :meth:`from_config` is the one way the config becomes this."""

    batch_size: int = 5000
    retry_attempts: int = 4
    retry_max_wait: float = 8.0
    breaker_cooldown: float = 15.0
    checkpoint_upload: str = DEFAULT_CHECKPOINT_UPLOAD  # best / last / all / none

    @classmethod
    def from_config(cls, config: Config, backend: str) -> WorkerSettings:
        """The settings of the worker of ``backend`` (its checkpoint upload policy included)."""
        tracking = config.tracking
        return cls(
            batch_size=tracking.batch_size,
            retry_attempts=tracking.retry_attempts,
            retry_max_wait=tracking.retry_max_wait,
            breaker_cooldown=tracking.breaker_cooldown,
            checkpoint_upload=config.checkpointing.upload.get(backend, DEFAULT_CHECKPOINT_UPLOAD),
        )


def wants_checkpoint(policy: str, data: Any) -> bool:
    """Whether a ``checkpoint`` event is uploaded when it arrives under ``policy`` (best / last / all / none).

    ``last`` is decided at close (only the latest checkpoint is uploaded), so it answers False here.
    """
    if policy == "all":
        return True
    if policy == "best":
        return bool(data.get("is_best")) or "best" in (data.get("aliases") or [])
    return False


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


def _is_checkpoint(event: Event) -> bool:
    """Checkpoint events are delivered on their own: a slow upload must not hold a metric batch."""
    return isinstance(event, RecordEvent) and event.kind_name in (CHECKPOINT, REGISTER_MODEL)


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
        self._artifacts = backend.capabilities.supports_artifacts  # False once put_artifact says it is not implemented
        self._last_checkpoint: Any = None  # for checkpoint_upload "last", uploaded at close
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

    def deliver_pending(self, deadline: float) -> DeliveryState:
        """Open the backend if needed and deliver what the journal holds now, without closing it.

        What a process that dies mid-run leaves behind: the conformance kit uses it to check that a
        backend reopened later continues without duplicates.
        """
        self._deadline = deadline
        if self.state.started or self._open():
            while self._deliver_available() and time.monotonic() < deadline:
                pass
        self._save_cursor(durable=True)
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
            self._deliver_groups(self._groups(events))
        except (_Aborted, KeyboardInterrupt):
            raise
        except Exception as exc:
            self._record_error(exc)
            self._open_breaker()
            self._save_cursor(durable=True)
            return False
        self._failures_in_row = 0
        self._acknowledged.clear()
        if events:  # every event of the chunk is delivered, or skipped on purpose (an unsupported artifact)
            self.state.seq = max(self.state.seq, events[-1].seq)
        self.state.offset = chunk.end_offset
        self._save_cursor(durable=True)
        return True

    @property
    def _concurrency(self) -> int:
        return max(1, self.backend.capabilities.concurrent_writes)

    def _order_free(self, group: list[Event]) -> bool:
        """Metric and system batches may travel side by side when the backend does not care about order."""
        return self._concurrency > 1 and all(type(e) in (MetricEvent, SystemEvent) for e in group)

    def _deliver_groups(self, groups: Iterable[list[Event]]) -> None:
        """Deliver batches in order, keeping up to ``concurrent_writes`` order-free ones in flight.

        Not rounds: a new request leaves as soon as any one is answered, so a slow request
        does not idle the others and the server always has one waiting per worker. The cursor
        moves over the batches acknowledged in an unbroken run from the oldest; a batch that is
        not order-free waits until everything before it has arrived.
        """
        sent: deque[tuple[list[Event], Future[None]]] = deque()
        try:
            for group in groups:
                if not self._order_free(group):
                    self._settle(sent, in_flight=0)
                    self._deliver_acknowledged(group)
                    continue
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix=f"unitrack-{self.backend.name}")
                sent.append((group, self._pool.submit(self._deliver_retrying, group)))
                self._settle(sent, in_flight=self._concurrency - 1)
            self._settle(sent, in_flight=0)
        except BaseException:
            for group, future in sent:  # delivered beyond a failed batch: not sent again by this worker
                if future.exception() is None:
                    self._acknowledged.update(event.seq for event in group)
            raise

    def _settle(self, sent: deque[tuple[list[Event], Future[None]]], in_flight: int) -> None:
        """Wait until at most ``in_flight`` batches are unanswered, move the cursor over the oldest
        acknowledged ones, and raise a batch's failure (its retries are spent) as soon as one is known."""
        pending = [future for _, future in sent if not future.done()]
        while len(pending) > in_flight:
            wait(pending, return_when=FIRST_COMPLETED)
            pending = [future for future in pending if not future.done()]
        while sent and sent[0][1].done():
            group, future = sent[0]
            future.result()
            sent.popleft()
            self.state.seq = max(self.state.seq, group[-1].seq)
            self._save_cursor()
        failed = next((future for _, future in sent if future.done() and future.exception() is not None), None)
        if failed is not None:
            failed.result()

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
            if isinstance(event, ArtifactEvent) or _is_checkpoint(event):
                if batch:
                    yield batch
                    batch, values, params = [], 0, 0
                if self._artifacts or not isinstance(event, ArtifactEvent):
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
            if self._artifacts:
                self._put(self.backend.put_artifact, self.paths.root / first.path, first.name)
            return
        self.backend.write(group)
        if isinstance(first, RecordEvent) and first.kind_name == CHECKPOINT:
            self._last_checkpoint = first.data
            if wants_checkpoint(self._settings.checkpoint_upload, first.data):
                self._upload_checkpoint(first.data)

    def _upload_checkpoint(self, data: Any) -> None:
        """The checkpoint upload policy, applied here for every backend (not in each backend)."""
        if self._artifacts:
            self._put(self.backend.put_checkpoint, Path(str(data.get("path", ""))), data)

    def _put(self, put: Callable[..., None], *args: Any) -> None:
        """An upload; ``NotImplementedError`` means the backend stores no files: skipped from now on, not retried."""
        try:
            put(*args)
        except NotImplementedError as exc:
            self._artifacts = False
            log.info("unitrack: backend %r stores no artifacts (%s); they stay in the local store", self.backend.name, exc)

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
            if self._settings.checkpoint_upload == "last" and self._last_checkpoint is not None:
                self._upload_checkpoint(self._last_checkpoint)
        except Exception as exc:  # the status still goes out
            self._record_error(exc)
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

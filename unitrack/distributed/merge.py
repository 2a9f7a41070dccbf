"""Rank 0's side of ``rank_policy: all``: what the other ranks send, moved into the run's queue.

System samples keep their rank (``SystemEvent.rank``); metrics matching ``tracking.rank_metrics``
are named ``rank<r>/<key>``. Parameters stay rank 0's.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from unitrack.dispatch import QueueItem
from unitrack.distributed.rendezvous import RankSource
from unitrack.events import UNNUMBERED, MetricEvent, SystemEvent

log = logging.getLogger("unitrack")

_POLL_S = 0.1
_MERGE_INTERVAL_S = 1.0


class RankMerger:
    """On rank 0 under ``rank_policy: all``: moves what the other ranks sent into the run's queue."""

    def __init__(self, source: RankSource, world_size: int, queue: deque[QueueItem], patterns: Sequence[str]) -> None:
        self._source = source
        self._ranks = range(1, world_size)
        self._queue = queue
        self._patterns = list(patterns)
        self._chosen: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unitrack-ranks", daemon=True)
        self._thread.start()

    def merge(self) -> int:
        """Enqueue what the ranks wrote since the last call; return how many events that was."""
        moved = 0
        with self._lock:
            for rank in self._ranks:
                for record in self._source.read(rank):
                    moved += self._enqueue(rank, record)
        return moved

    def close(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for every rank to say it finished, then merge the rest."""
        deadline = time.monotonic() + timeout
        waiting = set(self._ranks)
        while waiting and time.monotonic() < deadline:
            waiting = {rank for rank in waiting if not self._closed(rank)}
            if waiting:
                time.sleep(_POLL_S)
        self._stop.set()
        self._thread.join(2.0)
        try:
            self.merge()
        except Exception as exc:
            log.warning("unitrack: the last merge of the other ranks' events failed: %s", exc)
        if waiting:
            log.warning(
                "unitrack: rank(s) %s had not finished after %.0f s (dead, or still running); "
                "what they send later is not part of the run",
                sorted(waiting),
                timeout,
            )

    def _closed(self, rank: int) -> bool:
        try:
            return self._source.closed(rank)
        except Exception:  # the store went away with the job: nothing more will come
            return True

    def _run(self) -> None:
        while not self._stop.wait(_MERGE_INTERVAL_S):
            try:
                self.merge()
            except Exception as exc:  # a rank's bad file must not end the merging of the others
                log.warning("unitrack: merging the other ranks' events failed: %s", exc)

    def _enqueue(self, rank: int, record: Mapping[str, Any]) -> int:
        kind = record.get("kind")
        if kind == SystemEvent.kind:
            sample = SystemEvent.from_record(record)
            self._queue.append(SystemEvent(UNNUMBERED, sample.time, sample.values, rank))
            return 1
        if kind == MetricEvent.kind:
            event = MetricEvent.from_record(record)
            values = {f"rank{rank}/{key}": value for key, value in event.values.items() if self._is_chosen(key)}
            if values:
                self._queue.append(MetricEvent(UNNUMBERED, event.time, event.step, values))
                return 1
        return 0

    def _is_chosen(self, key: str) -> bool:
        chosen = self._chosen.get(key)
        if chosen is None:
            chosen = self._chosen[key] = any(fnmatch.fnmatchcase(key, p) for p in self._patterns)
        return chosen

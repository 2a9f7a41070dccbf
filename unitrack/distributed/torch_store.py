"""Ranks meet and talk through torch.distributed's key-value store: no shared filesystem needed.

Every ``torchrun`` job has a TCPStore (its agent's, at ``MASTER_ADDR:MASTER_PORT``, shared with the
workers) and so does every initialised process group. Through it, under one key per launch:

- **the rendezvous**: rank 0 sets ``<key>/run_id``; another rank polls for it, at most
  ``tracking.rank_join_timeout`` seconds, and only when it needs it;
- **the ranks' channel** (``rank_policy: all``): another rank's journal writer sends each batch
  of events (about one a second) as ``<key>/rank<r>/<n>`` and then counts it in
  ``<key>/rank<r>/count``; rank 0 reads and deletes the batches in order every second, and at
  finish waits (bounded) for each rank's ``<key>/rank<r>/closed``. A batch is stored before it is
  counted, so rank 0 never meets a gap; it is deleted once read, so nothing arrives twice and the
  store holds about a second of each rank's events.

Nothing here is a collective: a rank that stops logging, or dies, never blocks another.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from unitrack.errors import UnitrackError
from unitrack.events import Event
from unitrack.store.layout import RunPaths

log = logging.getLogger("unitrack")

_PREFIX = "unitrack/"
_POLL_S = 0.1
_CONNECT_TIMEOUT_S = 60.0


def job_store() -> Any | None:
    """This job's torch.distributed store (under our own prefix): a client of torchrun's agent store
    or of the initialised group's store; None when there is neither (then the ranks use files)."""
    loaded = sys.modules.get("torch.distributed")  # never imported here for a job that has none
    initialised = loaded is not None and loaded.is_available() and loaded.is_initialized()
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    address, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not (initialised or agent):
        return None
    import torch.distributed as dist

    store: Any
    if address and port:  # a connection of our own: our background threads never share the group's
        timeout = timedelta(seconds=_CONNECT_TIMEOUT_S)
        store = dist.TCPStore(address, int(port), is_master=False, timeout=timeout)
    else:
        store = dist.distributed_c10d._get_default_store()
    return dist.PrefixStore(_PREFIX, store)


class StoreRendezvous:
    """Rank 0 leaves its run id in the job's store; the other ranks read it there and send their events."""

    def __init__(self, store: Any, key: str, timeout: float, unused_paths: RunPaths) -> None:
        self.store = store
        self.key = key
        self.timeout = timeout
        self._unused_paths = unused_paths

    def publish(self, run_id: str) -> None:
        self.store.set(f"{self.key}/run_id", run_id)

    def wait(self, rank: int) -> str:
        """The run id rank 0 published for this launch; raises after ``timeout`` seconds."""
        name = f"{self.key}/run_id"
        timeout = self.timeout
        deadline = time.monotonic() + timeout
        while not self.store.check([name]):  # polled: a store's own wait logs noise on every timeout
            if time.monotonic() >= deadline:
                raise UnitrackError(
                    f"rank {rank}: rank 0 published no run within {timeout:g} s (in torch.distributed's store, "
                    f"key {_PREFIX}{name}); does rank 0 create its tracker too, with the same experiment name? "
                    "(tracking.rank_join_timeout sets the wait)"
                )
            time.sleep(_POLL_S)
        return bytes(self.store.get(name)).decode()

    def sender(self, rank: int) -> StoreSender:
        """Needs no run id: rank 0 reads the batches under this launch's key."""
        return StoreSender(self.store, f"{self.key}/rank{rank}", self._unused_paths)

    def receiver(self, ranks: Sequence[int], run_dir: Path) -> StoreReceiver:
        return StoreReceiver(self.store, self.key, ranks)


class StoreSender:
    """Another rank's journal sink: each batch the writer thread hands it goes to the store."""

    def __init__(self, store: Any, prefix: str, paths: RunPaths) -> None:
        self.store = store
        self.prefix = prefix
        self.paths = paths  # never written: the writer finds no journal there and numbers from 1
        self.dropped_events = 0
        self._sent = 0

    @property
    def journal_offset(self) -> int:
        return 0  # nothing is written locally: no backend worker tails this rank

    def open(self, *args: Any) -> None:
        """Nothing to open: the store is there for the whole job."""

    def write(self, events: Sequence[Event]) -> None:
        """Send one batch. When the store cannot be reached this raises an OSError: the writer keeps
        the batch (and what comes after it) and sends it again under the same number."""
        try:
            self.store.set(f"{self.prefix}/{self._sent}", "\n".join(event.to_json() for event in events))
            self.store.add(f"{self.prefix}/count", 1)
        except RuntimeError as exc:  # torch's DistStoreError / DistNetworkError
            raise ConnectionError(f"torch.distributed's store is unreachable: {exc}") from exc
        self._sent += 1

    def flush(self) -> None:
        """A batch is delivered once written: nothing to flush."""

    def add_dropped(self, count: int) -> None:
        self.dropped_events += count

    def close(self, status: str, **fields: Any) -> None:
        """Say that this rank sent everything: rank 0 waits for this key before its last merge."""
        try:
            self.store.set(f"{self.prefix}/closed", json.dumps({"status": status, "time": time.time(), **fields}))
        except RuntimeError as exc:  # the job's store is gone (rank 0's node ended): nobody waits any more
            log.warning("unitrack: could not tell rank 0 that this rank finished: %s", exc)


class StoreReceiver:
    """Rank 0's side of the channel: the other ranks' batches, in order, each read once."""

    def __init__(self, store: Any, key: str, ranks: Sequence[int]) -> None:
        self.store = store
        self.key = key
        self._read = dict.fromkeys(ranks, 0)

    def read(self, rank: int) -> list[dict[str, Any]]:
        """The records ``rank`` sent since the last call."""
        prefix = f"{self.key}/rank{rank}"
        count = int(self.store.add(f"{prefix}/count", 0))
        records: list[dict[str, Any]] = []
        for number in range(self._read[rank], count):
            name = f"{prefix}/{number}"
            text = bytes(self.store.get(name)).decode()
            self.store.delete_key(name)
            records.extend(json.loads(line) for line in text.splitlines() if line)
            self._read[rank] = number + 1
        return records

    def closed(self, rank: int) -> bool:
        return bool(self.store.check([f"{self.key}/rank{rank}/closed"]))

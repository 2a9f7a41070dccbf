"""Off the hot path: the journal writer (:mod:`.writer`) and one delivery worker per remote backend (:mod:`.worker`)."""

from __future__ import annotations

from unitrack.dispatch.worker import BackendWorker, DeliveryState, WorkerSettings
from unitrack.dispatch.writer import Dispatcher, FlushRequest, QueueItem, warn_undelivered

__all__ = ["BackendWorker", "DeliveryState", "Dispatcher", "FlushRequest", "QueueItem", "WorkerSettings", "warn_undelivered"]

"""The one vocabulary every part of unitrack speaks: what the journal stores and backends receive.

A training call becomes an event with a wall-clock time; the journal writer gives it its
sequence number (its place in the run's journal), so the tracker enqueues the very objects the
journal stores and backends receive: there is one hand-off type, not a tuple per call site.
Backends translate events; they never see user objects. Each event is one JSON line in the
journal, so non-finite numbers are written as :mod:`unitrack.nonfinite` writes them.

Kinds beyond the core six travel as :class:`RecordEvent`; their names are the constants below
and their payloads the ``TypedDict`` beside each, so a writer and a reader of a kind agree on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

from unitrack.nonfinite import Number, decode_number, encode_number

UNNUMBERED = 0  # the seq of an event not yet written: the journal writer numbers it

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
_encode_finite = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


@dataclass(slots=True)
class Event:
    """Common fields: ``seq`` orders events within a run, ``time`` is seconds since the epoch."""

    seq: int
    time: float
    kind: ClassVar[str] = "event"

    def payload(self) -> dict[str, Any]:
        """The kind-specific fields, JSON-ready."""
        return {}

    def to_record(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "time": self.time, **self.payload()}

    def to_json(self) -> str:
        """The event's journal line (without the newline)."""
        return _encode(self.to_record())


@dataclass(slots=True)
class MetricEvent(Event):
    """Values of one or more metrics at one step."""

    step: int = 0
    values: dict[str, Number] = field(default_factory=dict)
    kind: ClassVar[str] = "metric"

    def payload(self) -> dict[str, Any]:
        return {"step": self.step, "values": {k: encode_number(v) for k, v in self.values.items()}}

    def to_json(self) -> str:
        # the journal's most frequent line: encoded directly, falling back only for NaN / inf
        try:
            values = _encode_finite(self.values)
        except ValueError:
            values = _encode({k: encode_number(v) for k, v in self.values.items()})
        return '{"seq":%d,"kind":"metric","time":%r,"step":%d,"values":%s}' % (self.seq, self.time, self.step, values)  # noqa: UP031 - the fastest form

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> MetricEvent:
        values = {k: decode_number(v) for k, v in rec["values"].items()}
        return cls(rec["seq"], rec["time"], rec["step"], values)


@dataclass(slots=True)
class ParamsEvent(Event):
    """Hyperparameters, flattened with '/' and already redacted."""

    values: dict[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "params"

    def payload(self) -> dict[str, Any]:
        return {"values": self.values}

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> ParamsEvent:
        return cls(rec["seq"], rec["time"], dict(rec["values"]))


@dataclass(slots=True)
class TagsEvent(Event):
    """Run tags (string keys and values)."""

    values: dict[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "tags"

    def payload(self) -> dict[str, Any]:
        return {"values": self.values}

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> TagsEvent:
        return cls(rec["seq"], rec["time"], dict(rec["values"]))


@dataclass(slots=True)
class ArtifactEvent(Event):
    """A file or folder stored in the run folder at ``path`` (relative to the run folder)."""

    name: str = ""
    path: str = ""
    size: int = 0
    sha256: str | None = None
    kind: ClassVar[str] = "artifact"

    def payload(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> ArtifactEvent:
        return cls(rec["seq"], rec["time"], rec["name"], rec["path"], rec.get("size", 0), rec.get("sha256"))


@dataclass(slots=True)
class SystemEvent(Event):
    """One sample of the system monitor; ``rank`` labels samples of other distributed ranks."""

    values: dict[str, Number] = field(default_factory=dict)
    rank: int | None = None
    kind: ClassVar[str] = "system"

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"values": {k: encode_number(v) for k, v in self.values.items()}}
        if self.rank is not None:
            data["rank"] = self.rank
        return data

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> SystemEvent:
        values = {k: decode_number(v) for k, v in rec["values"].items()}
        return cls(rec["seq"], rec["time"], values, rec.get("rank"))


@dataclass(slots=True)
class StatusEvent(Event):
    """A change of the run's status (running, completed, failed, interrupted)."""

    status: str = "running"
    kind: ClassVar[str] = "status"

    def payload(self) -> dict[str, Any]:
        return {"status": self.status}

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> StatusEvent:
        return cls(rec["seq"], rec["time"], rec["status"])


@dataclass(slots=True)
class RecordEvent(Event):
    """An event of a kind defined by a later part of unitrack (checkpoints, snapshots...).

    Its fields travel as a plain mapping, so the journal, the dispatcher and backends that do
    not know the kind still carry it intact.
    """

    kind_name: str = "record"
    data: Mapping[str, Any] = field(default_factory=dict)  # one of the payloads above, or a later kind's

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.kind_name

    def payload(self) -> dict[str, Any]:
        return dict(self.data)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> RecordEvent:
        data = {k: v for k, v in rec.items() if k not in ("seq", "kind", "time")}
        return cls(rec["seq"], rec["time"], rec["kind"], data)


# --- the record kinds (RecordEvent.kind_name) and their payloads -----------------------------------

REWIND = "rewind"
CHECKPOINT = "checkpoint"
CHECKPOINT_REMOVED = "checkpoint_removed"
SNAPSHOT = "snapshot"
HISTOGRAM = "histogram"
PROCESS = "process"
ERROR = "error"
REGISTER_MODEL = "register_model"
NOTE = "note"


class RewindData(TypedDict):
    """A resumed run went back: metric points after ``step`` are superseded."""

    step: int
    checkpoint: str  # the name of the checkpoint it resumed from


class _CheckpointLocation(TypedDict, total=False):
    url: str  # where it lives when saved to object storage (s3://...)
    register: dict[str, Any]  # {name, aliases}: register it as a model version (best checkpoints)


class CheckpointData(_CheckpointLocation):
    """A checkpoint was saved (``path`` absolute, ``sha256`` of its manifest)."""

    name: str
    path: str
    epoch: int
    step: int
    metrics: dict[str, Any]
    is_best: bool
    aliases: list[str]
    sha256: str | None


class CheckpointRemovedData(TypedDict):
    """Retention or ``unitrack clean`` removed a checkpoint."""

    name: str


class SnapshotData(TypedDict):
    """A weight snapshot (``manifest`` relative to the store)."""

    name: str
    step: int
    tag: str | None
    manifest: str


class HistogramData(TypedDict):
    """Histograms of tensors at ``step``: {tensor name: {min, max, num, sum, sum_squares, bucket_limits, bucket_counts}}."""

    step: int
    values: dict[str, dict[str, Any]]


class ProcessData(TypedDict):
    """How the command ``unitrack commit`` ran ended."""

    exit_code: int
    duration: float
    peak_rss_mb: float | None
    command: list[str]


class ErrorData(TypedDict):
    """Why a run failed: the exception that ended it (redacted; see ``unitrack.failure``)."""

    type: str
    message: str
    traceback: str
    where: str | None


class RegisterModelData(TypedDict):
    """Register a checkpoint as a version of model ``name`` (MLflow Model Registry, W&B model artifact)."""

    name: str
    aliases: list[str]
    checkpoint: CheckpointData


class NoteData(TypedDict):
    """A free-text note on a run (``unitrack ui``)."""

    text: str


# how a part of unitrack that is not the tracker emits a record: ``emit(kind, payload)``
RecordSink = Callable[[str, Mapping[str, Any]], None]

RECORD_KINDS: dict[str, type] = {
    REWIND: RewindData,
    CHECKPOINT: CheckpointData,
    CHECKPOINT_REMOVED: CheckpointRemovedData,
    SNAPSHOT: SnapshotData,
    HISTOGRAM: HistogramData,
    PROCESS: ProcessData,
    ERROR: ErrorData,
    REGISTER_MODEL: RegisterModelData,
    NOTE: NoteData,
}

EVENT_TYPES: dict[str, Any] = {
    cls.kind: cls for cls in (MetricEvent, ParamsEvent, TagsEvent, ArtifactEvent, SystemEvent, StatusEvent)
}


def event_from_record(rec: Mapping[str, Any]) -> Event:
    """Rebuild an event from its journal record; unknown kinds become a :class:`RecordEvent`."""
    cls = EVENT_TYPES.get(rec.get("kind", ""), RecordEvent)
    return cls.from_record(rec)

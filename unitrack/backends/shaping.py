"""Fitting events to a backend's own limits, declared once per backend as :class:`Limits`.

Every remote backend needs the same few things: keys it accepts, parameter values within its
length limit (never silently cut: a shortened value carries the hash of the full one, which is
stored in full elsewhere), writes split within its per-request limits, and system samples and
metric points as flat ``(key, value, step, time)`` points. (The checkpoint upload policy is the
dispatcher's worker's, not the backends'.)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from unitrack.events import Event, MetricEvent, SystemEvent

T = TypeVar("T")

_HASH_CHARS = 12


@dataclass(frozen=True)
class Limits:
    """What a backend's own service accepts in keys and values; ``None`` means no limit."""

    invalid_key_chars: str | None = None  # a regex character class of what a key may not contain
    max_key_length: int | None = None
    max_param_value_length: int | None = None
    max_tag_value_length: int | None = None
    max_tags_per_write: int | None = None

    def sanitize_key(self, key: str) -> str:
        """``key`` with characters the backend refuses replaced by '_' and cut to its length limit."""
        if self.invalid_key_chars:
            key = re.sub(self.invalid_key_chars, "_", key)
        if self.max_key_length is not None and len(key) > self.max_key_length:
            key = key[: self.max_key_length]
        return key


def chunks(items: Sequence[T], size: int | None) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size`` (all at once when ``size`` is None)."""
    if not size or len(items) <= size:
        if items:
            yield items
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]


def value_text(value: Any) -> str:
    """The text a backend that stores strings gets for a parameter or tag value."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def shorten(text: str, limit: int | None, where: str) -> tuple[str, bool]:
    """``text`` within ``limit`` characters; when cut, it ends with the SHA-256 of the full text and ``where``."""
    if limit is None or len(text) <= limit:
        return text, False
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    marker = f"...[sha256:{digest}, full value in {where}]"
    return text[: max(0, limit - len(marker))] + marker, True


@dataclass
class FittedValues:
    """Keys and values made acceptable; ``overflow`` keeps the full values that had to be shortened."""

    values: dict[str, str]
    overflow: dict[str, Any]


def fit_values(
    values: dict[str, Any], caps: Limits, limit: int | None, overflow_file: str
) -> FittedValues:
    """Sanitise keys and shorten values over ``limit`` (one of the capabilities' length limits)."""
    fitted: dict[str, str] = {}
    overflow: dict[str, Any] = {}
    for key, value in values.items():
        name = caps.sanitize_key(key)
        text, cut = shorten(value_text(value), limit, overflow_file)
        fitted[name] = text
        if cut:
            overflow[key] = value
    return FittedValues(fitted, overflow)


class KeyNames:
    """Sanitised metric keys, computed once per distinct key (the same key repeats every step)."""

    def __init__(self, caps: Limits) -> None:
        self._caps = caps
        self._names: dict[str, str] = {}

    def __call__(self, key: str) -> str:
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = self._caps.sanitize_key(key)
        return name


def system_step(event: SystemEvent, start_time: float) -> int:
    """The step of a system sample: whole seconds since the run started (deterministic on replay)."""
    return max(0, int(event.time - start_time))


def system_key(key: str, rank: int | None) -> str:
    key = key if key.startswith("system/") else f"system/{key}"
    return key if rank is None else f"rank{rank}/{key}"


def points(events: Iterable[Event], start_time: float) -> Iterator[tuple[str, float, int, float]]:
    """Every metric and system value of ``events`` as ``(key, value, step, time)``."""
    for event in events:
        if type(event) is MetricEvent:
            for key, value in event.values.items():
                yield key, value, event.step, event.time
        elif type(event) is SystemEvent:
            step = system_step(event, start_time)
            for key, value in event.values.items():
                yield system_key(key, event.rank), value, step, event.time

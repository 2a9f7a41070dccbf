"""Why a run failed: the exception that ended it, kept so that ``show``, ``ls``, the backends and
``explain`` can say why instead of only "failed".

The record is redacted like everything else stored: credentials in URIs and ``key=value`` pairs
whose key names a secret are removed from the message and the traceback before they are written.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from unitrack.redact import REDACTED, redact_text

MAX_MESSAGE_CHARS = 2_000
MAX_TRACEBACK_CHARS = 20_000  # the end of a longer traceback is kept: the frames nearest the error
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<name>\b[\w\-]*(?:key|token|password|passwd|pwd|secret|credentials?|auth)\b)(?P<sep>\s*[=:]\s*)"
    r"(?P<quote>['\"]?)(?P<value>[^\s'\",)}\]]+)",
    re.IGNORECASE,
)


def redact_prose(text: str) -> str:
    """``text`` without URI credentials or values assigned to secret-looking names (``api_key=...``)."""
    text = redact_text(text)
    return _SECRET_ASSIGNMENT.sub(lambda m: f"{m['name']}{m['sep']}{m['quote']}{REDACTED}", text)


def describe_failure(
    kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
) -> dict[str, Any] | None:
    """``{"type", "message", "traceback", "where"}`` of an exception that ended a run; None for none
    (or for ``SystemExit(0)``, which is a normal end)."""
    if kind is None:
        return None
    if issubclass(kind, SystemExit) and getattr(value, "code", 1) in (0, None):
        return None
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    text = "".join(traceback.format_exception(kind, value, tb))
    frames = traceback.extract_tb(tb) if tb is not None else []
    where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else None
    return {
        "type": name,
        "message": redact_prose(str(value) if value is not None else "")[:MAX_MESSAGE_CHARS],
        "traceback": redact_prose(text)[-MAX_TRACEBACK_CHARS:],
        "where": where,
    }


def failure_from_line(line: str | None, traceback_text: str | None = None) -> dict[str, Any] | None:
    """The record back from what a backend kept of it (its one line and the traceback), for readers."""
    if not line:
        return None
    kind, _, message = line.partition(": ")
    return {"type": kind, "message": message, "traceback": traceback_text or "", "where": None}


def failure_line(error: Mapping[str, Any] | None, width: int = 120) -> str | None:
    """One line for a listing: ``ValueError: the message's first line``, cut to ``width``."""
    if not error:
        return None
    message = (str(error.get("message") or "").strip().splitlines() or [""])[0]
    line = f"{error.get('type')}: {message}" if message else str(error.get("type"))
    return line if len(line) <= width else line[: width - 1] + "…"

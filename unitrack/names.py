"""Validation of user-chosen names and run ids, so that no name can escape the store; parsing the
references that name a run elsewhere (an MLflow run), for the readers and for checkpoint loading."""

from __future__ import annotations

import os
import re
import time

MAX_NAME_LENGTH = 250
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_RUN_ID_PATTERN = re.compile(r"^[0-9a-z]{1,64}$")
_TIME_DIGITS = 9  # milliseconds in base 32: enough until the year 3000
_RANDOM_DIGITS = 4


def validate_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is safe to use as a run or experiment name, else raise ValueError.

    Names end up in folder names of some backends (TensorBoard, W&B), so anything that
    could point outside a folder is refused: separators, ``.``/``..``, NUL and control characters.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    problem = None
    if not value.strip():
        problem = "it is empty"
    elif value != value.strip():
        problem = "it starts or ends with white space"
    elif len(value) > MAX_NAME_LENGTH:
        problem = f"it is longer than {MAX_NAME_LENGTH} characters"
    elif "\x00" in value or any(ord(c) < 32 for c in value):
        problem = "it contains a NUL or control character"
    elif "/" in value or "\\" in value or (os.sep in value) or os.path.isabs(value):
        problem = "it contains a path separator"
    elif value in (".", ".."):
        problem = "it is a relative path"
    if problem:
        raise ValueError(f"{what} {value!r} is not allowed: {problem}")
    return value


def is_run_id(value: str) -> bool:
    """True when ``value`` has the shape of a run id (or a prefix of one)."""
    return bool(_RUN_ID_PATTERN.match(value))


def _base32(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 32)
        digits.append(_CROCKFORD[rest])
    return "".join(reversed(digits))


def new_run_id(now: float | None = None) -> str:
    """A short id that sorts by creation time: 9 base-32 digits of milliseconds + 4 random ones."""
    import secrets  # here: it loads hashlib and OpenSSL, which the reading commands never need

    millis = int((time.time() if now is None else now) * 1000)
    return _base32(millis, _TIME_DIGITS) + _base32(secrets.randbits(5 * _RANDOM_DIGITS), _RANDOM_DIGITS)


def parse_mlflow_ref(ref: str) -> tuple[str | None, str]:
    """(tracking URI, run id) of ``mlflow://HOST:PORT/RUN_ID``, ``mlflow+https://HOST/RUN_ID`` or
    ``mlflow:RUN_ID`` (whose server ``MLFLOW_TRACKING_URI`` names)."""
    scheme, _, rest = ref.partition(":")
    transport = scheme.partition("+")[2] or "http"
    if rest.startswith("//"):
        host, _, run_id = rest[2:].rstrip("/").rpartition("/")
        if not host or not run_id:
            raise ValueError(f"{ref!r}: write mlflow://HOST:PORT/RUN_ID")
        return f"{transport}://{host}", run_id
    if not rest:
        raise ValueError(f"{ref!r}: write mlflow:RUN_ID (with MLFLOW_TRACKING_URI set) or mlflow://HOST:PORT/RUN_ID")
    return os.environ.get("MLFLOW_TRACKING_URI"), rest

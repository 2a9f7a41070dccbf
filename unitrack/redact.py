"""Secret redaction: what looks like a key, token or password never reaches disk or a backend.

A key is secret when one of its words ends in a secret-ish word (``api_key``, ``hfToken``,
``db-password``). Only string values are redacted: ``max_tokens: 512`` or ``key_dim: 64``
are numbers, never credentials, and must survive. Credentials inside URIs
(``postgresql://user:pw@host``) are redacted wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***REDACTED***"

_SECRET_WORD_ENDINGS = (
    "key",
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "credential",
    "credentials",
    "auth",
    "authorization",
)
_WORD_SPLIT = re.compile(r"[^0-9a-zA-Z]+|(?<=[a-z0-9])(?=[A-Z])")
_URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
_SECRET_OPTION = re.compile(r"^(--?[\w\-]*?(?:key|token|password|passwd|secret|credentials?))(=)(.+)$", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """True when a parameter or config key names a secret."""
    words = [w.lower() for w in _WORD_SPLIT.split(key) if w]
    return any(word.endswith(_SECRET_WORD_ENDINGS) for word in words)


def redact_text(text: str) -> str:
    """Remove credentials embedded in URIs from free text."""
    if "@" not in text:
        return text
    return _URI_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)


def redact_value(key: str, value: Any) -> Any:
    """The value to store for ``key``: redacted when the key is secret and the value is text."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return REDACTED if is_secret_key(key) and value else redact_text(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(key, item) for item in value)
    return value


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``values`` (nested mappings included) with every secret redacted."""
    return {key: redact_value(str(key), value) for key, value in values.items()}


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with the values of secret-looking options (``--api-key=x``, ``--token x``) redacted."""
    result: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            result.append(REDACTED)
            hide_next = False
            continue
        match = _SECRET_OPTION.match(arg)
        if match:
            result.append(f"{match[1]}={REDACTED}")
        elif arg.startswith("-") and "=" not in arg and is_secret_key(arg.lstrip("-")):
            result.append(arg)
            hide_next = True
        else:
            result.append(redact_text(arg))
    return result

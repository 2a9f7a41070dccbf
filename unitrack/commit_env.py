"""What ``unitrack commit`` hands to the script it runs, through the environment, and how a tracker reads it.

``commit`` reserves the run (``UNITRACK_RUN_ID``) and passes its message, tags and the command
line; the script's tracker writes into that run, with them. Kept apart from the tracker so that
``unitrack.workflow.commit`` (the writer of these variables) and the tracker (their reader) share
their names without importing each other.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from unitrack.redact import redact_argv, redact_value

log = logging.getLogger("unitrack")

# What `unitrack commit` hands to the script it runs.
MESSAGE_ENV = "UNITRACK_MESSAGE"
TAGS_ENV = "UNITRACK_TAGS"
COMMAND_ENV = "UNITRACK_COMMAND"
RUN_ID_ENV = "UNITRACK_RUN_ID"  # the run `unitrack commit` reserved: the script's tracker writes into it


def tags_from(tags: Mapping[str, Any] | Sequence[str] | None) -> dict[str, str]:
    if not tags:
        return {}
    if isinstance(tags, Mapping):
        return {str(k): "" if v is None else str(redact_value(str(k), str(v))) for k, v in tags.items()}
    if isinstance(tags, str):
        return {tags: ""}
    return {str(label): "" for label in tags}


def tags_from_env() -> dict[str, str]:
    raw = os.environ.get(TAGS_ENV)
    if not raw:
        return {}
    try:
        return tags_from(json.loads(raw))
    except (ValueError, TypeError):
        log.warning("unitrack: ignoring %s: not a JSON object", TAGS_ENV)
        return {}


def run_id_from_env() -> str | None:
    """The run id ``unitrack commit`` handed down; taken once, so a second tracker gets its own run."""
    return os.environ.pop(RUN_ID_ENV, None) or None


def command_from_env() -> list[str] | None:
    raw = os.environ.get(COMMAND_ENV)
    if not raw:
        return None
    try:
        return redact_argv([str(part) for part in json.loads(raw)])
    except (ValueError, TypeError):
        return None

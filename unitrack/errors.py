"""The exceptions unitrack raises on purpose, so callers can catch them by kind."""

from __future__ import annotations


class UnitrackError(Exception):
    """Base class of every error unitrack raises deliberately."""


class ConfigError(UnitrackError, ValueError):
    """A configuration that cannot be used; the message names the file, line and key."""


class RunNotFoundError(UnitrackError, LookupError):
    """No run, or more than one, matches what the user named."""


class StoreError(UnitrackError):
    """The local store is missing, unreadable or inconsistent."""


class BackendUnavailableError(UnitrackError):
    """A backend cannot be used here (missing package, bad settings); the message says how to fix it."""

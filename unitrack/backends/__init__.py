"""Tracking backends: the remote mirrors of the local store, created by name from the registry.

Each remote backend lives in its own module and imports its package only when it is used,
so a config that does not name MLflow never imports MLflow. Third-party backends register under
the entry-point group ``unitrack.backends`` (see :mod:`unitrack.backends.registry` and
docs/backends.md, "Writing a backend").
"""

from __future__ import annotations

from unitrack.backends.registry import create_backend, create_backends

__all__ = ["create_backend", "create_backends"]

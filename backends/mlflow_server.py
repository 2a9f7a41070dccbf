"""Kept for the tests and benches of a clone: the MLflow server now lives in ``unitrack server``
(``unitrack.server.tracking``). Run ``unitrack server`` for the whole stack."""

from __future__ import annotations

from unitrack.server.procs import free_port
from unitrack.server.tracking import MlflowServer

__all__ = ["MlflowServer", "free_port"]

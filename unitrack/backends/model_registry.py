"""Registering a checkpoint as a model version: MLflow's Model Registry, and the aliases W&B
model artifacts carry.

A ``checkpoint`` event carries ``register: {name, aliases}`` when it is a new best and
``checkpointing.register_model`` is set; ``tracker.register_model`` journals a ``register_model``
event naming a checkpoint. Either way the backend mirrors the checkpoint (if it has not already)
and makes it a version of the named model, with the aliases moved onto it: so the alias always
points at the newest best. Replaying the event (after a crash, ``unitrack sync``) finds the version
already registered from the same source instead of adding another.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unitrack.backends.base import PermanentBackendError


def registration(data: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(model name, aliases) a checkpoint or register_model event asks for, or None."""
    register = data.get("register")
    if not isinstance(register, dict) or not register.get("name"):
        return None
    return str(register["name"]), [str(a) for a in register.get("aliases") or []]


@contextmanager
def checkpoint_folder(data: dict[str, Any], settings: Any = None) -> Iterator[Path]:
    """The checkpoint of a ``checkpoint`` event as a local folder: where it was saved, or
    downloaded from object storage (``settings``: the run's ``checkpointing``) for the time of an upload."""
    url = data.get("url")
    if url:
        from unitrack.checkpoint.locations import s3_client
        from unitrack.checkpoint.s3 import S3Location, fetched

        with fetched(S3Location.parse(str(url)), s3_client(settings)) as folder:
            yield folder
        return
    folder = Path(str(data.get("path", "")))
    if not folder.exists():
        raise PermanentBackendError(f"checkpoint {data.get('name')!r} is gone from {folder} (removed by retention?)")
    yield folder


def register_mlflow_version(client: Any, run_id: str, artifact_path: str, name: str, aliases: list[str]) -> str:
    """Make ``runs:/<run>/<artifact_path>`` a version of model ``name`` (once) and point ``aliases`` at it."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"runs:/{run_id}/{artifact_path}"
    existing = [v for v in client.search_model_versions(f"name = '{name}'") if v.source == source]
    if existing:
        version = str(existing[0].version)
    else:
        version = str(client.create_model_version(name, source, run_id=run_id, await_creation_for=0).version)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)
    return version

"""Reading, verifying and deleting a registered checkpoint wherever it lives: a folder on disk, or
objects in S3-compatible storage (``CheckpointInfo.url``). The manager, ``unitrack verify`` and
resuming all go through here, so an ``s3://`` checkpoint is checked exactly like a folder."""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path
from typing import Any

from unitrack.checkpoint.crypto import DEFAULT_KEY_ENV
from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointNotFoundError
from unitrack.checkpoint.registry import CheckpointInfo
from unitrack.checkpoint.storage import MANIFEST, read_manifest

log = logging.getLogger("unitrack")


@functools.lru_cache(maxsize=8)
def _client(settings_key: tuple[str | None, str | None, str | None]) -> Any:
    from types import SimpleNamespace

    from unitrack.checkpoint import s3

    endpoint, region, profile = settings_key
    return s3.client(SimpleNamespace(s3=SimpleNamespace(endpoint_url=endpoint, region=region, profile=profile)))


def s3_client(settings: Any = None) -> Any:
    """One boto3 client per ``checkpointing.s3`` setting (clients are thread-safe and keep connections alive)."""
    s3 = getattr(settings, "s3", None)
    return _client((getattr(s3, "endpoint_url", None), getattr(s3, "region", None), getattr(s3, "profile", None)))


def read_info(info: CheckpointInfo, key_env: str = DEFAULT_KEY_ENV, settings: Any = None) -> Any:
    """The verified TrainingState of a registered checkpoint; raises CheckpointCorruptError naming what failed."""
    from unitrack.checkpoint.storage import read_checkpoint

    if info.url is None:
        return read_checkpoint(info.path, info.sha256, key_env)
    from unitrack.checkpoint.s3 import S3Location, fetched

    with fetched(S3Location.parse(info.url), s3_client(settings)) as folder:
        return read_checkpoint(folder, info.sha256, key_env)


def verify_info(info: CheckpointInfo, key_env: str = DEFAULT_KEY_ENV, settings: Any = None) -> list[str]:
    """Every problem of a registered checkpoint (empty when intact)."""
    try:
        read_info(info, key_env, settings)
    except CheckpointCorruptError as exc:
        return exc.problems
    except CheckpointNotFoundError as exc:
        return [str(exc)]
    except FileNotFoundError:
        return [f"folder {info.path} is missing"]
    return []


def delete_info(info: CheckpointInfo, settings: Any = None) -> None:
    """Delete a checkpoint's files (the manifest first in object storage, where there is no rename)."""
    if info.url is not None:
        from unitrack.checkpoint.s3 import S3Location, delete_checkpoint

        delete_checkpoint(S3Location.parse(info.url), s3_client(settings))
        shutil.rmtree(info.path, ignore_errors=True)  # a staging folder a crash may have left
        return
    delete_listed_files(Path(info.path))


def delete_listed_files(folder: Path) -> None:
    """Delete a checkpoint folder's files named by its manifest, then the folder if that empties it."""
    try:
        manifest = read_manifest(folder)
        names = [*manifest["files"], MANIFEST]
    except CheckpointCorruptError:
        names = [MANIFEST]
    for name in names:
        try:
            (folder / name).unlink()
        except FileNotFoundError:
            pass
    try:
        folder.rmdir()
    except OSError:
        if folder.exists():
            log.warning("unitrack: left %s in place: it holds files that are not part of the checkpoint", folder)

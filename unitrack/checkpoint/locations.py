"""Reading, verifying and deleting a registered checkpoint wherever it lives: a folder on disk, or
objects in S3-compatible storage (``CheckpointInfo.url``). The manager, ``unitrack verify`` and
resuming all go through here, so an ``s3://`` checkpoint is checked exactly like a folder."""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unitrack.checkpoint.crypto import DEFAULT_KEY_ENV
from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointNotFoundError
from unitrack.checkpoint.registry import CheckpointInfo
from unitrack.checkpoint.storage import MANIFEST, read_manifest

log = logging.getLogger("unitrack")


_CLIENT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
               "AWS_DEFAULT_REGION")  # fmt: skip


@functools.lru_cache(maxsize=8)
def _client(settings_key: tuple[str | None, ...], env_key: tuple[str | None, ...]) -> Any:
    from types import SimpleNamespace

    from unitrack.checkpoint import s3

    endpoint, region, profile = settings_key
    return s3.client(SimpleNamespace(s3=SimpleNamespace(endpoint_url=endpoint, region=region, profile=profile)))


def s3_client(settings: Any = None) -> Any:
    """One boto3 client per ``checkpointing.s3`` setting and AWS environment (clients are thread-safe
    and keep their connections alive; a changed environment gets a new one)."""
    s3 = getattr(settings, "s3", None)
    settings_key = (getattr(s3, "endpoint_url", None), getattr(s3, "region", None), getattr(s3, "profile", None))
    return _client(settings_key, tuple(os.environ.get(k) for k in _CLIENT_ENV))


@contextmanager
def local_folder(info: CheckpointInfo, settings: Any = None) -> Iterator[Path]:
    """The checkpoint's folder on this machine: where it is, or downloaded for the time of the block."""
    if info.url is None:
        yield Path(info.path)
        return
    from unitrack.checkpoint.s3 import S3Location, fetched

    with fetched(S3Location.parse(info.url), s3_client(settings)) as folder:
        yield folder


def read_info(info: CheckpointInfo, key_env: str = DEFAULT_KEY_ENV, settings: Any = None) -> Any:
    """The verified TrainingState of a registered checkpoint; raises CheckpointCorruptError naming what failed."""
    from unitrack.checkpoint.storage import read_checkpoint

    with local_folder(info, settings) as folder:
        return read_checkpoint(folder, info.sha256, key_env)


def audit_info(info: CheckpointInfo, key_env: str = DEFAULT_KEY_ENV, settings: Any = None) -> tuple[list[str], str | None]:
    """Every problem of a registered checkpoint (empty when intact), and its checksum algorithm."""
    from unitrack.checkpoint.storage import checkpoint_algorithm, verify_checkpoint

    try:
        with local_folder(info, settings) as folder:
            if not folder.exists():
                return [f"folder {folder} is missing"], None
            return verify_checkpoint(folder, info.sha256, key_env), checkpoint_algorithm(folder)
    except CheckpointNotFoundError as exc:
        return [str(exc)], None


def verify_info(info: CheckpointInfo, key_env: str = DEFAULT_KEY_ENV, settings: Any = None) -> list[str]:
    """Every problem of a registered checkpoint (empty when intact)."""
    return audit_info(info, key_env, settings)[0]


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

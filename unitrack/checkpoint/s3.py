"""Checkpoints in S3-compatible object storage (``checkpoint_dir: s3://bucket/prefix``).

A checkpoint is the same folder as on disk, as objects under ``<prefix>/<run id>/<name>/``: the
tensor files and ``state.json`` first (large files as multipart uploads, which boto3's transfer
manager aborts when a part fails, so no half object ever appears), ``manifest.json`` last. A
prefix without a manifest is not a checkpoint, exactly as a folder without one is not on disk.
The files are written, and their per-file and per-tensor checksums computed, by the same code as
on disk (``storage.write_checkpoint`` into a staging folder), and read back by it after download
(``storage.read_checkpoint``), so every guarantee and every checksum algorithm is shared.

The client honours the standard AWS configuration (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``,
``AWS_PROFILE``, ``AWS_DEFAULT_REGION``...), overridden by ``checkpointing.s3``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointError, CheckpointNotFoundError, CheckpointSaveError
from unitrack.checkpoint.storage import MANIFEST

SCHEME = "s3://"
MULTIPART_THRESHOLD = 64 << 20
PART_SIZE = 32 << 20


def is_s3(location: object) -> bool:
    return isinstance(location, str) and location.startswith(SCHEME)


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/key`` split; ``key`` has no leading or trailing slash."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not is_s3(url):
            raise ValueError(f"{url!r} is not an s3:// URL")
        bucket, _, key = url[len(SCHEME) :].partition("/")
        if not bucket:
            raise ValueError(f"{url!r}: write s3://BUCKET/PREFIX")
        return cls(bucket, key.strip("/"))

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, f"{self.key}/{name}".strip("/"))

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def client(settings: Any = None) -> Any:
    """A boto3 S3 client: the standard AWS configuration, with ``checkpointing.s3`` on top."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise CheckpointError("s3:// checkpoints need boto3: pip install 'unitrack[s3]'") from None
    s3 = getattr(settings, "s3", None)
    session = boto3.session.Session(profile_name=getattr(s3, "profile", None))
    endpoint = getattr(s3, "endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = getattr(s3, "region", None) or session.region_name or "us-east-1"
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=16)
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE, max_concurrency=4)


def upload_checkpoint(folder: Path, target: S3Location, s3: Any) -> None:
    """Upload the checkpoint folder ``folder`` to ``target``: every file its manifest lists, then the
    manifest. On failure the files already uploaded are deleted (a multipart upload in progress is
    aborted by the transfer manager); with no manifest they were never a checkpoint anyway."""
    from unitrack.checkpoint.storage import read_manifest

    files = list(read_manifest(folder)["files"])
    done: list[str] = []
    try:
        if _exists(s3, target.child(MANIFEST)):
            raise CheckpointSaveError(f"checkpoint {target} already exists")
        for name in files:
            s3.upload_file(str(folder / name), target.bucket, target.child(name).key, Config=_transfer_config())
            done.append(name)
        s3.upload_file(str(folder / MANIFEST), target.bucket, target.child(MANIFEST).key)
    except BaseException as exc:
        _delete_keys(s3, target.bucket, [target.child(n).key for n in done])
        if isinstance(exc, CheckpointError):
            raise
        if isinstance(exc, Exception):
            raise CheckpointSaveError(f"could not upload checkpoint {target.name} to {target}: {exc}") from exc
        raise


def download_checkpoint(source: S3Location, folder: Path, s3: Any) -> Path:
    """Download the checkpoint at ``source`` into the new folder ``folder``: the manifest first, then the
    files it lists (a missing one is left out, for verification to name). Nothing is checked here."""
    import json

    from botocore.exceptions import ClientError

    folder.mkdir(parents=True)
    try:
        s3.download_file(source.bucket, source.child(MANIFEST).key, str(folder / MANIFEST))
    except ClientError as exc:
        if _not_found(exc):
            raise CheckpointNotFoundError(f"no checkpoint at {source} ({MANIFEST} is missing)") from None
        raise
    try:
        names = list(json.loads((folder / MANIFEST).read_bytes())["files"])
    except (ValueError, KeyError, TypeError):
        return folder  # read_checkpoint names the damaged manifest
    for name in names:
        if "/" in name or name.startswith("."):
            raise CheckpointCorruptError(str(source), [f"{MANIFEST} lists an unsafe file name {name!r}"])
        try:
            s3.download_file(source.bucket, source.child(name).key, str(folder / name), Config=_transfer_config())
        except ClientError as exc:
            if not _not_found(exc):
                raise
    return folder


@contextmanager
def fetched(source: S3Location, s3: Any, parent: Path | None = None) -> Iterator[Path]:
    """The checkpoint at ``source`` downloaded into a temporary folder, removed afterwards."""
    temp = Path(tempfile.mkdtemp(prefix=".unitrack-fetch-", dir=parent))
    try:
        yield download_checkpoint(source, temp / source.name, s3)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def delete_checkpoint(target: S3Location, s3: Any) -> None:
    """Delete a checkpoint: its manifest first (from then on it is no checkpoint), then everything under it."""
    _delete_keys(s3, target.bucket, [target.child(MANIFEST).key])
    _delete_keys(s3, target.bucket, [o["Key"] for o in _objects(s3, target)])


def committed(prefix: S3Location, s3: Any) -> tuple[list[str], list[str]]:
    """The names of the checkpoints under ``prefix`` (they have a manifest), and of the
    incomplete ones (objects without a manifest: a save that never finished)."""
    names: dict[str, bool] = {}
    for entry in _objects(s3, prefix):
        relative = entry["Key"][len(prefix.key) :].lstrip("/")
        name, _, rest = relative.partition("/")
        if rest:
            names[name] = names.get(name, False) or rest == MANIFEST
    return sorted(n for n, ok in names.items() if ok), sorted(n for n, ok in names.items() if not ok)


def remove_incomplete(prefix: S3Location, s3: Any) -> list[str]:
    """Delete what saves that never finished left under ``prefix``; return their names."""
    _, incomplete = committed(prefix, s3)
    for name in incomplete:
        delete_checkpoint(prefix.child(name), s3)
    return incomplete


def _objects(s3: Any, prefix: S3Location) -> Iterator[dict[str, Any]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=prefix.key + "/")
    for page in pages:
        yield from page.get("Contents", [])


def _exists(s3: Any, target: S3Location) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=target.bucket, Key=target.key)
    except ClientError as exc:
        if _not_found(exc):
            return False
        raise
    return True


def _delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        if batch:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})


def _not_found(exc: Any) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket")

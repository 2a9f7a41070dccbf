"""A checkpoint folder on disk: written whole or not at all, and checked on every read.

``<dir>/<name>/`` holds ``model.safetensors``, ``state.safetensors``, ``state.json`` and
``manifest.json``. Everything is written into a temporary folder beside the target, fsynced,
then the manifest (the commit marker, with every file's and tensor's checksum) is written last
and the folder renamed into place. A folder without a valid manifest is not a checkpoint.

The manifest names the algorithm of its checksums (``"algorithm": "blake3"``, format
``unitrack.checkpoint/2``); a ``unitrack.checkpoint/1`` manifest, written by earlier versions,
names none and holds SHA-256s, and is verified as such. The registry and the ``checkpoint``
event keep the SHA-256 of ``manifest.json`` itself (a few kilobytes: speed does not matter there).

A sharded checkpoint (``"layout": "dcp"``, see ``sharded``) holds torch Distributed Checkpoint
files instead of the two tensor files, under the same kind of manifest: a checksum per file.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unitrack.checkpoint.crypto import DEFAULT_KEY_ENV, load_key
from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointSaveError
from unitrack.hashing import (
    DEFAULT_ALGORITHM,
    LEGACY_ALGORITHM,
    SHA256,
    check_algorithm,
    digest_bytes,
    digest_file,
    label_of,
)
from unitrack.store.fsio import fsync_dir

MANIFEST = "manifest.json"
STATE_JSON = "state.json"
MANIFEST_FORMAT = "unitrack.checkpoint/2"
LEGACY_MANIFEST_FORMAT = "unitrack.checkpoint/1"  # SHA-256 checksums, no "algorithm" key
SHARDED_LAYOUT = "dcp"  # manifest "layout" of a sharded checkpoint (torch Distributed Checkpoint files)
TEMP_PREFIX = ".tmp-"
_SPACE_MARGIN = 1.05


def tensor_file_name(stem: str, compression: str, encrypted: bool = False) -> str:
    from unitrack.checkpoint.streams import COMPRESSION_SUFFIX

    return f"{stem}.safetensors{COMPRESSION_SUFFIX[compression]}{'.enc' if encrypted else ''}"


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete folders a killed save left behind; return them."""
    removed = []
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.name.startswith(TEMP_PREFIX) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def check_free_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed * _SPACE_MARGIN:
        raise CheckpointSaveError(
            f"not enough free space in {directory} for a checkpoint: {needed / 1e6:.1f} MB needed, "
            f"{free / 1e6:.1f} MB free"
        )


def write_checkpoint(
    target: Path, state: Any, compression: str, key: bytes | None = None, algorithm: str = DEFAULT_ALGORITHM
) -> tuple[dict[str, Any], str]:
    """Write ``state`` (a TrainingState of CPU tensors) as folder ``target``; return (manifest, its SHA-256).

    With ``key`` the tensor files are encrypted (AES-256-GCM); ``state.json`` holds no tensors.
    ``algorithm`` is that of the files' and tensors' checksums (BLAKE3 unless a test asks for the
    SHA-256 of earlier versions)."""
    from unitrack.checkpoint.tensorfile import write_tensor_file

    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise CheckpointSaveError(f"checkpoint folder {target} already exists")
    check_free_space(parent, state.nbytes)
    temp = temporary_folder(target)
    try:
        temp.mkdir()
        files: dict[str, Any] = {}
        metadata = {"format": MANIFEST_FORMAT}
        for stem, tensors in (("model", state.model), ("state", state.tensors)):
            name = tensor_file_name(stem, compression, encrypted=key is not None)
            files[name] = write_tensor_file(temp / name, tensors, metadata, compression, key, algorithm).to_dict()
        files[STATE_JSON] = write_state_json(temp, state.info, algorithm)
        return commit_folder(temp, target, files, state.info, algorithm)
    except BaseException as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, CheckpointSaveError):
            raise CheckpointSaveError(f"could not save checkpoint {target.name} in {parent}: {exc}") from exc
        raise


def temporary_folder(target: Path) -> Path:
    """A fresh name beside ``target`` for a save in progress (removed at the next start if it is left)."""
    return target.parent / f"{TEMP_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}"


def file_entry(path: Path, algorithm: str = DEFAULT_ALGORITHM) -> dict[str, Any]:
    """The manifest entry of a file that holds no tensors of ours: its checksum and size."""
    digest, size = digest_file(path, algorithm)
    return {"digest": digest, "size": size}


def write_state_json(folder: Path, info: dict[str, Any], algorithm: str = DEFAULT_ALGORITHM) -> dict[str, Any]:
    """Write ``state.json`` (epoch, step, metrics and the non-tensor state) durably; return its manifest entry."""
    path = folder / STATE_JSON
    with open(path, "x", encoding="utf-8") as handle:
        json.dump(info, handle, indent=1, sort_keys=True, allow_nan=False)
        handle.flush()
        os.fsync(handle.fileno())
    return file_entry(path, algorithm)


def commit_folder(
    temp: Path,
    target: Path,
    files: dict[str, Any],
    info: dict[str, Any],
    algorithm: str = DEFAULT_ALGORITHM,
    layout: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Write the manifest (every file's checksum) last into ``temp``, fsync, rename ``temp`` to
    ``target``: the checkpoint exists whole or not at all. Returns (manifest, its SHA-256)."""
    manifest = {
        "format": MANIFEST_FORMAT,
        "algorithm": algorithm,
        "name": target.name,
        "epoch": info["epoch"],
        "step": info["step"],
        "time": time.time(),
        "files": files,
        **({"layout": layout} if layout else {}),
    }
    data = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    with open(temp / MANIFEST, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(temp)
    os.rename(temp, target)
    fsync_dir(target.parent)
    return manifest, manifest_checksum(data)


def manifest_checksum(data: bytes) -> str:
    """The checksum of ``manifest.json``'s bytes that the registry and the ``checkpoint`` event keep (SHA-256)."""
    return digest_bytes(data, SHA256)


def read_manifest(folder: Path, expected_sha: str | None = None) -> dict[str, Any]:
    """The manifest of ``folder``; a missing, unreadable or (against ``expected_sha``) changed one raises."""
    path = folder / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointCorruptError(str(folder), [f"{MANIFEST} is missing (the save never finished)"]) from None
    if expected_sha is not None and manifest_checksum(data) != expected_sha:
        raise CheckpointCorruptError(str(folder), [f"{MANIFEST} fails its SHA-256 recorded in the registry"])
    try:
        manifest = json.loads(data)
    except ValueError:
        raise CheckpointCorruptError(str(folder), [f"{MANIFEST} is not valid JSON"]) from None
    if manifest.get("format") not in (MANIFEST_FORMAT, LEGACY_MANIFEST_FORMAT):
        raise CheckpointCorruptError(str(folder), [f"{MANIFEST} has unknown format {manifest.get('format')!r}"])
    try:
        manifest_algorithm(manifest)
    except ValueError as exc:
        raise CheckpointCorruptError(str(folder), [f"{MANIFEST}: {exc}"]) from None
    return manifest


def manifest_algorithm(manifest: dict[str, Any]) -> str:
    """The algorithm of a manifest's checksums: the one it names, or SHA-256 (earlier versions named none)."""
    return check_algorithm(manifest.get("algorithm") or LEGACY_ALGORITHM)


def entry_digest(entry: Mapping[str, Any]) -> str | None:
    """A manifest file entry's digest: ``digest`` since format 2, ``sha256`` in format 1."""
    value = entry.get("digest", entry.get(LEGACY_ALGORITHM))
    return value if isinstance(value, str) else None


def read_checkpoint(folder: Path, expected_sha: str | None = None, key_env: str = DEFAULT_KEY_ENV) -> Any:
    """Read and verify a checkpoint folder into a TrainingState; raise CheckpointCorruptError naming what failed.

    Encrypted files are decrypted with the key in ``$key_env``."""
    from unitrack.checkpoint.state import TrainingState
    from unitrack.checkpoint.tensorfile import read_tensor_file

    manifest = read_manifest(folder, expected_sha)
    if manifest.get("layout") == SHARDED_LAYOUT:
        from unitrack.checkpoint.sharded import read_whole

        return read_whole(folder, manifest)
    algorithm = manifest_algorithm(manifest)
    problems: list[str] = []
    maps: dict[str, Any] = {}
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.exists():
            problems.append(f"{name}: missing")
            continue
        if name == STATE_JSON:
            problems.extend(check_file(folder, name, entry, algorithm))
            continue
        tensors, _, found = read_tensor_file(path, entry, str(folder), lambda: load_key(key_env), algorithm)
        problems.extend(found)
        maps[name.split(".", 1)[0]] = tensors
    if problems:
        raise CheckpointCorruptError(str(folder), problems)
    info = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    return TrainingState(maps.get("model", {}), maps.get("state", {}), info)


def read_weights(folder: Path, expected_sha: str | None = None, key_env: str = DEFAULT_KEY_ENV) -> dict[str, Any]:
    """The verified model weights of a checkpoint folder (for analysis tools: deltas, compare)."""
    return read_checkpoint(folder, expected_sha, key_env).weights()


def verify_checkpoint(folder: Path, expected_sha: str | None = None, key_env: str = DEFAULT_KEY_ENV) -> list[str]:
    """Every problem of a checkpoint folder (empty when it is intact); :func:`checkpoint_algorithm` says
    which algorithm's checksums were checked."""
    try:
        manifest = read_manifest(folder, expected_sha)
        if manifest.get("layout") == SHARDED_LAYOUT:  # plain files: checking them needs no loading
            return check_files(folder, manifest, sorted(manifest["files"]))
        read_checkpoint(folder, expected_sha, key_env)
    except CheckpointCorruptError as exc:
        return exc.problems
    return []


def check_files(folder: Path, manifest: dict[str, Any], names: list[str]) -> list[str]:
    """The problems of the manifest's files ``names`` (each checked whole against its size and checksum)."""
    algorithm = manifest_algorithm(manifest)
    return [problem for name in names for problem in check_file(folder, name, manifest["files"][name], algorithm)]


def check_file(folder: Path, name: str, entry: Mapping[str, Any], algorithm: str) -> list[str]:
    """The problems of one file the manifest lists by its size and checksum (empty when it matches)."""
    try:
        digest, size = digest_file(folder / name, algorithm)
    except FileNotFoundError:
        return [f"{name}: missing"]
    except OSError as exc:
        return [f"{name}: unreadable ({exc})"]
    if size != entry.get("size", size):
        return [f"{name}: size is {size} bytes, the manifest says {entry['size']}"]
    if digest != entry_digest(entry):
        return [f"{name}: file fails its {label_of(algorithm)}"]
    return []


def checkpoint_algorithm(folder: Path) -> str | None:
    """The algorithm of a checkpoint's checksums ("blake3", "sha256"), or None when its manifest is unreadable."""
    try:
        return manifest_algorithm(read_manifest(folder))
    except CheckpointCorruptError:
        return None

"""A checkpoint folder on disk: written whole or not at all, and checked on every read.

``<dir>/<name>/`` holds ``model.safetensors``, ``state.safetensors``, ``state.json`` and
``manifest.json``. Everything is written into a temporary folder beside the target, fsynced,
then the manifest (the commit marker, with every file's and tensor's SHA-256) is written last
and the folder renamed into place. A folder without a valid manifest is not a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointSaveError
from unitrack.store.fsio import fsync_dir

MANIFEST = "manifest.json"
STATE_JSON = "state.json"
MANIFEST_FORMAT = "unitrack.checkpoint/1"
TEMP_PREFIX = ".tmp-"
_SPACE_MARGIN = 1.05


def tensor_file_name(stem: str, compression: str) -> str:
    from unitrack.checkpoint.tensorfile import COMPRESSION_SUFFIX

    return f"{stem}.safetensors{COMPRESSION_SUFFIX[compression]}"


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


def write_checkpoint(target: Path, state: Any, compression: str) -> tuple[dict[str, Any], str]:
    """Write ``state`` (a TrainingState of CPU tensors) as folder ``target``; return (manifest, its SHA-256)."""
    from unitrack.checkpoint.tensorfile import hash_file, write_tensor_file

    import hashlib

    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise CheckpointSaveError(f"checkpoint folder {target} already exists")
    check_free_space(parent, state.nbytes)
    temp = parent / f"{TEMP_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        temp.mkdir()
        files: dict[str, Any] = {}
        metadata = {"format": MANIFEST_FORMAT}
        for stem, tensors in (("model", state.model), ("state", state.tensors)):
            name = tensor_file_name(stem, compression)
            files[name] = write_tensor_file(temp / name, tensors, metadata, compression).to_dict()
        state_json = temp / STATE_JSON
        with open(state_json, "x", encoding="utf-8") as handle:
            json.dump(state.info, handle, indent=1, sort_keys=True, allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        sha, size = hash_file(state_json)
        files[STATE_JSON] = {"sha256": sha, "size": size}
        manifest = {
            "format": MANIFEST_FORMAT,
            "name": target.name,
            "epoch": state.info["epoch"],
            "step": state.info["step"],
            "time": time.time(),
            "files": files,
        }
        data = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
        with open(temp / MANIFEST, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(temp)
        os.rename(temp, target)
        fsync_dir(parent)
    except BaseException as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, CheckpointSaveError):
            raise CheckpointSaveError(f"could not save checkpoint {target.name} in {parent}: {exc}") from exc
        raise
    return manifest, hashlib.sha256(data).hexdigest()


def read_manifest(folder: Path, expected_sha: str | None = None) -> dict[str, Any]:
    """The manifest of ``folder``; a missing, unreadable or (against ``expected_sha``) changed one raises."""
    import hashlib

    path = folder / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointCorruptError(str(folder), [f"{MANIFEST} is missing (the save never finished)"]) from None
    if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
        raise CheckpointCorruptError(str(folder), [f"{MANIFEST} fails its SHA-256 recorded in the registry"])
    try:
        manifest = json.loads(data)
    except ValueError:
        raise CheckpointCorruptError(str(folder), [f"{MANIFEST} is not valid JSON"]) from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise CheckpointCorruptError(str(folder), [f"{MANIFEST} has unknown format {manifest.get('format')!r}"])
    return manifest


def read_checkpoint(folder: Path, expected_sha: str | None = None) -> Any:
    """Read and verify a checkpoint folder into a TrainingState; raise CheckpointCorruptError naming what failed."""
    from unitrack.checkpoint.state import TrainingState
    from unitrack.checkpoint.tensorfile import hash_file, read_tensor_file

    manifest = read_manifest(folder, expected_sha)
    problems: list[str] = []
    maps: dict[str, Any] = {}
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.exists():
            problems.append(f"{name}: missing")
            continue
        if name == STATE_JSON:
            sha, _ = hash_file(path)
            if sha != entry["sha256"]:
                problems.append(f"{name}: file fails its SHA-256")
            continue
        tensors, _, found = read_tensor_file(path, entry, str(folder))
        problems.extend(found)
        maps[name.split(".", 1)[0]] = tensors
    if problems:
        raise CheckpointCorruptError(str(folder), problems)
    info = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    return TrainingState(maps.get("model", {}), maps.get("state", {}), info)


def verify_checkpoint(folder: Path, expected_sha: str | None = None) -> list[str]:
    """Every problem of a checkpoint folder (empty when it is intact)."""
    try:
        read_checkpoint(folder, expected_sha)
    except CheckpointCorruptError as exc:
        return exc.problems
    return []

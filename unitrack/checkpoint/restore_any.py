"""``unitrack.load_checkpoint(ref, model, ...)`` and ``unitrack pull REF --to DIR``: a checkpoint named
from anywhere (``refs``), downloaded when remote, verified in full before anything is touched.

Every file and tensor is checked against the manifest by the same reader as a local load, and the
model, optimizer and scheduler are restored only from a checkpoint that passed. A reference to one
checkpoint that fails raises an error naming the damaged file; ``@best`` / ``@last`` warn, naming
it, and go on to the next intact checkpoint, as ``load_best`` does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from functools import partial
from pathlib import Path
from typing import Any

from unitrack.checkpoint.crypto import DEFAULT_KEY_ENV
from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointError, CheckpointNotFoundError


def _first_intact(ref: str | Path, store: str | Path | None, key_env: str, keep: Path | None) -> tuple[Any, str, Path | None]:
    """(verified state, where it came from, its folder copied into ``keep`` when asked)."""
    from unitrack.checkpoint.refs import resolve
    from unitrack.checkpoint.storage import read_checkpoint

    resolved = resolve(ref, store)
    for candidate in resolved.candidates:
        with (
            tempfile.TemporaryDirectory(prefix=".unitrack-fetch-", dir=keep) as scratch,
            candidate.fetch(Path(scratch)) as folder,
        ):
            try:
                state = read_checkpoint(folder, candidate.sha256, key_env)
            except CheckpointCorruptError as exc:
                damaged = CheckpointCorruptError(candidate.label, exc.problems)
                if resolved.exact:
                    raise damaged from None
                warnings.warn(f"unitrack: skipping {damaged}", RuntimeWarning, stacklevel=3)
                continue
            copied = _keep(folder, keep / candidate.name) if keep is not None else None
            return state, candidate.label, copied
    raise CheckpointNotFoundError(f"no intact checkpoint for {str(ref)!r}: every candidate is damaged")


def _keep(folder: Path, target: Path) -> Path:
    if target.exists():
        raise FileExistsError(f"{target} already exists: pull into another folder or remove it")
    temp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    shutil.copytree(folder, temp)
    os.rename(temp, target)
    return target


def load_checkpoint(
    ref: str | Path,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    *,
    store: str | Path | None = None,
    key_env: str = DEFAULT_KEY_ENV,
) -> tuple[int, int]:
    """Restore the checkpoint ``ref`` names into ``model`` (and ``optimizer``, ``scheduler``); return (epoch, step).

    ``ref``: a path, ``RUN@best|last|STEP`` in ``store`` (default: ``$UNITRACK_DIR`` or ./.unitrack),
    ``mlflow://HOST:PORT/RUN@best|last|STEP`` or ``s3://bucket/prefix/CHECKPOINT``. Nothing is touched
    unless every checksum holds. A sharded checkpoint (DCP) loads into a plain model here, or into a
    sharded (FSDP2 / DTensor) model when every rank calls this with the same ``ref``."""
    from unitrack.checkpoint.state import is_sharded, restore

    if is_sharded(model):  # FSDP2 / DTensor: every rank calls this and loads its own shards
        from unitrack.checkpoint.sharded import load_sharded

        return load_sharded(partial(_shared_folders, ref, store), model, optimizer, scheduler)
    state, _, _ = _first_intact(ref, store, key_env, None)  # a sharded checkpoint is read whole for a plain model
    return restore(state, model, optimizer, scheduler, None)


def _shared_folders(ref: str | Path, store: str | Path | None) -> tuple[list[tuple[str, str | None]], bool, str]:
    """For a sharded model: the folders ``ref`` names, which every rank reads itself; a checkpoint
    in object storage or MLflow is pulled first (``unitrack pull``) into a folder they all see."""
    from unitrack.checkpoint.refs import resolve

    resolved = resolve(ref, store)
    found: list[tuple[str, str | None]] = []
    with tempfile.TemporaryDirectory(prefix=".unitrack-fetch-") as scratch:
        for candidate in resolved.candidates:
            with candidate.fetch(Path(scratch)) as folder:
                if Path(scratch) in (folder, *folder.parents):
                    raise CheckpointError(
                        f"{candidate.label} is remote: for a sharded model, pull it first (unitrack pull {ref} "
                        "--to DIR) into a folder every rank can read, and load that folder"
                    )
                found.append((str(folder), candidate.sha256))
    return found, not resolved.exact, f"no intact checkpoint for {str(ref)!r}: every candidate is damaged"


def pull_checkpoint(ref: str | Path, to: Path, *, store: str | Path | None = None, key_env: str = DEFAULT_KEY_ENV) -> tuple[Path, str]:
    """Copy the checkpoint ``ref`` names into ``to/<name>``, verified; return (that folder, where it came from)."""
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    _, label, folder = _first_intact(ref, store, key_env, to)
    assert folder is not None
    return folder, label

"""The store's content-addressed objects: a tensor's raw bytes, stored once under their hash.

``<store>/objects/blake3/ab/cdef...`` holds the bytes of one tensor, nothing else (the manifest
that references it knows its shape, dtype and the hash algorithm). Two snapshots that share a
tensor share its file, so a frozen layer costs nothing after the first snapshot. Objects are
written to a temporary name and renamed, so a reader never sees half an object. Snapshots of
earlier versions reference ``objects/sha256/``, which stays readable and is collected the same way.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from unitrack.hashing import ALGORITHMS, DEFAULT_ALGORITHM, digest_bytes
from unitrack.store.layout import StoreLayout

ALGORITHM = DEFAULT_ALGORITHM
# an object younger than this is never collected: a snapshot being written may be about to reference it
GC_GRACE_S = 600.0


def objects_root(store_root: Path, algorithm: str = ALGORITHM) -> Path:
    return StoreLayout(Path(store_root)).objects / algorithm


def object_path(store_root: Path, digest: str, algorithm: str = ALGORITHM) -> Path:
    return objects_root(store_root, algorithm) / digest[:2] / digest[2:]


def digest_of(array: np.ndarray, algorithm: str = ALGORITHM) -> str:
    """The digest of an array's bytes, on the calling thread only (snapshots hash beside training)."""
    return digest_bytes(np.ascontiguousarray(array).data.cast("B"), algorithm)


def put_object(store_root: Path, array: np.ndarray, digest: str | None = None) -> tuple[str, bool]:
    """Store the bytes of ``array`` (if not stored yet) under its BLAKE3; return the digest and whether it was new."""
    digest = digest or digest_of(array)
    path = object_path(store_root, digest)
    if path.exists():
        os.utime(path)  # a fresh reference: keep it out of a concurrent collection's reach
        return digest, False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(np.ascontiguousarray(array).data.cast("B"))
    os.replace(temporary, path)
    return digest, True


def map_object(
    store_root: Path, digest: str, dtype: np.dtype, shape: tuple[int, ...], algorithm: str = ALGORITHM
) -> np.ndarray:
    """The object as a read-only array over a memory map (the file's pages, no copy)."""
    path = object_path(store_root, digest, algorithm)
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        return np.empty(shape, dtype=dtype)
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mapped, dtype=dtype, count=count).reshape(shape)


def collect_garbage(store_root: Path, referenced: Iterable[str], grace_s: float = GC_GRACE_S) -> tuple[int, int]:
    """Delete objects no manifest references (and older than ``grace_s``); return (files, bytes) freed."""
    keep = set(referenced)
    cutoff = time.time() - grace_s
    files = freed = 0
    roots = [objects_root(store_root, algorithm) for algorithm in ALGORITHMS]
    for folder in (folder for root in roots if root.exists() for folder in root.iterdir()):
        for path in folder.iterdir():
            digest = folder.name + path.name
            if digest in keep or path.name.startswith("."):
                continue
            stat = path.stat()
            if stat.st_mtime > cutoff:
                continue
            path.unlink(missing_ok=True)
            files += 1
            freed += stat.st_size
        if not any(folder.iterdir()):
            folder.rmdir()
    return files, freed

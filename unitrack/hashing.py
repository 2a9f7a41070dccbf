"""The one place content hashes come from: checkpoints, snapshots, artifacts, remote copies.

New checksums are BLAKE3 (256-bit, cryptographic; ~4 GB/s per core here against SHA-256's
0.7-1.7 GB/s, and able to use several cores on one large input), so verifying a load costs
about what reading it does. SHA-256 stays readable: a manifest names the algorithm its digests
were made with (none named means SHA-256, what every earlier version wrote), and a checker
asks this module for a hasher of *that* algorithm. Digests are lowercase hex strings of 64
characters for both algorithms.

    hasher = new_hasher(BLAKE3)          # .update(bytes-like), .hexdigest(), .digest()
    digest, size = digest_file(path)     # a whole file, streamed
    digest_bytes(data, SHA256)           # one buffer

Every hasher here releases the GIL while it hashes, so hashing on a thread overlaps I/O and
copies on another.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

BLAKE3 = "blake3"
SHA256 = "sha256"
DEFAULT_ALGORITHM = BLAKE3
LEGACY_ALGORITHM = SHA256  # what a manifest that names no algorithm was written with
ALGORITHMS = (BLAKE3, SHA256)
FILE_CHUNK = 8 << 20
_LABELS = {BLAKE3: "BLAKE3", SHA256: "SHA-256"}


class Hasher(Protocol):
    """What ``hashlib.sha256()`` and ``blake3.blake3()`` both are."""

    def update(self, data: Any, /) -> Any: ...

    def hexdigest(self) -> str: ...

    def digest(self) -> bytes: ...


def check_algorithm(algorithm: str) -> str:
    """``algorithm`` if it is one this module makes; a clear error naming it otherwise."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
    return algorithm


def label_of(algorithm: str) -> str:
    """How an algorithm is named to people: "BLAKE3", "SHA-256"."""
    return _LABELS.get(algorithm, algorithm)


def new_hasher(algorithm: str = DEFAULT_ALGORITHM, data: Any = None, *, threads: int = 1) -> Hasher:
    """A fresh hasher of ``algorithm``, fed ``data`` first when given.

    ``threads`` > 1 lets BLAKE3 spread each large ``update`` (a tensor, an 8 MB chunk) over that
    many cores; SHA-256 is sequential and ignores it. Callers on the training's side (snapshots)
    keep the default of one, so as not to take the training's cores.
    """
    if check_algorithm(algorithm) == SHA256:
        return hashlib.sha256() if data is None else hashlib.sha256(data)
    hasher = _blake3().blake3(max_threads=max(1, threads))
    if data is not None:
        hasher.update(data)
    return hasher


def digest_bytes(data: Any, algorithm: str = DEFAULT_ALGORITHM, *, threads: int = 1) -> str:
    """The hex digest of one bytes-like object (a memoryview of a tensor or array works)."""
    return new_hasher(algorithm, data, threads=threads).hexdigest()


def digest_file(path: Path, algorithm: str = DEFAULT_ALGORITHM, *, threads: int = 1) -> tuple[str, int]:
    """The hex digest and the size in bytes of a whole file, read in 8 MB chunks."""
    hasher = new_hasher(algorithm, threads=threads)
    size = 0
    buffer = bytearray(FILE_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            hasher.update(view[:count])
            size += count
    return hasher.hexdigest(), size


def digest_path(path: Path, algorithm: str = DEFAULT_ALGORITHM) -> tuple[int, str]:
    """Size and digest of a file, or of a folder: the digest of its files' relative paths and
    digests, in sorted order (so a renamed or changed file changes it)."""
    path = Path(path)
    if path.is_file():
        digest, size = digest_file(path, algorithm)
        return size, digest
    hasher = new_hasher(algorithm)
    total = 0
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        size, file_digest = digest_path(file, algorithm)
        total += size
        hasher.update(f"{file.relative_to(path).as_posix()}\0{file_digest}\n".encode())
    return total, hasher.hexdigest()


def _blake3() -> Any:
    try:
        import blake3
    except ImportError:  # a dependency of unitrack: only a broken install lacks it
        raise RuntimeError("BLAKE3 checksums need the blake3 package: pip install blake3") from None
    return blake3

"""Tensor files in the safetensors format, written and read with their checksums computed on the way.

Tensor bytes go straight between the tensors' memory and the file in chunks, while helper
threads hash the tensors (BLAKE3 and hashlib release the GIL). So a save costs about one
sequential write and a load about one pass over the bytes, with the checksums for free, and a
damaged tensor can be named. Every byte is hashed once: the file's checksum is the hash of its
header followed by its tensors' digests in file order (a hash tree), plus its exact size; the
algorithm (BLAKE3 for new files, SHA-256 for those of earlier versions) is the manifest's
(:mod:`unitrack.hashing`). A compressed file (gzip, zstd) holds the same safetensors bytes; its
checksums are those of the uncompressed bytes, and its size that of the compressed file.

A plain file is loaded through a private (copy-on-write) memory map: the tensors are views of
the file's pages, which the hash threads fault in while hashing them, so a verified load reads
every byte once and copies none — the one copy is into the model's own tensors
(``load_state_dict``), as after ``torch.load``. Writing to such a tensor copies that page and
never changes the file. Compressed and encrypted files are streamed into fresh buffers instead.
"""

from __future__ import annotations

import json
import mmap
import os
import queue
import struct
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unitrack.checkpoint.crypto import ALGORITHM as ENCRYPTION
from unitrack.checkpoint.crypto import DecryptingReader, EncryptingWriter
from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointError
from unitrack.checkpoint.storage import entry_digest
from unitrack.checkpoint.streams import compressor, decompressor, read_exact, start_writeback, write_all
from unitrack.hashing import DEFAULT_ALGORITHM, Hasher, label_of, new_hasher

CHUNK = 8 << 20
HASH_THREADS = max(1, min(4, (os.cpu_count() or 1)))

_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
for _name, _code in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2"), ("uint16", "U16"),
                     ("uint32", "U32"), ("uint64", "U64")):
    if hasattr(torch, _name):
        _DTYPES[getattr(torch, _name)] = _code
_CODES = {code: dtype for dtype, code in _DTYPES.items()}


@dataclass
class FileDigest:
    """What the manifest records of one tensor file (digests made with ``algorithm``)."""

    digest: str
    size: int
    compression: str
    tensors: dict[str, str] = field(default_factory=dict)
    encryption: str | None = None
    algorithm: str = DEFAULT_ALGORITHM

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry; the algorithm is named once, at the manifest's top level."""
        data = {"digest": self.digest, "size": self.size, "compression": self.compression, "tensors": self.tensors}
        if self.encryption:
            data["encryption"] = self.encryption
        return data


class _HashWorker(threading.Thread):
    """Hashes the chunks handed to it, in order, off the caller's thread."""

    def __init__(self, algorithm: str) -> None:
        super().__init__(name="unitrack-hash", daemon=True)
        self.algorithm = algorithm
        self.work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.digests: dict[str, str] = {}
        self.start()

    def run(self) -> None:
        current: dict[str, Hasher] = {}
        while (item := self.work.get()) is not None:
            key, chunk = item
            if chunk is None:
                self.digests[key] = (current.pop(key, None) or new_hasher(self.algorithm)).hexdigest()
            else:
                if key not in current:
                    current[key] = new_hasher(self.algorithm)
                current[key].update(chunk)


class _Hasher:
    """The digest of each tensor, on a few threads: tensors are dealt out in turn, so several are
    hashed at once while the caller reads or writes the next chunk."""

    def __init__(self, algorithm: str) -> None:
        self._workers = [_HashWorker(algorithm) for _ in range(HASH_THREADS)]
        self._assigned: dict[str, _HashWorker] = {}

    def feed(self, key: str, chunk: Any) -> None:
        worker = self._assigned.get(key)
        if worker is None:
            worker = self._assigned[key] = self._workers[len(self._assigned) % len(self._workers)]
        worker.work.put((key, chunk))

    def done(self, key: str) -> None:
        self.feed(key, None)

    def result(self) -> dict[str, str]:
        digests: dict[str, str] = {}
        for worker in self._workers:
            worker.work.put(None)
        for worker in self._workers:
            worker.join()
            digests.update(worker.digests)
        return digests


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.reshape(-1)
    if flat.numel() == 0:
        return memoryview(b"")
    return flat.view(torch.uint8).numpy().data.cast("B")


def _header(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    entries: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in _DTYPES:
            raise CheckpointError(f"tensor {name!r} has dtype {tensor.dtype}, which safetensors cannot store")
        size = tensor.numel() * tensor.element_size()
        entries[name] = {"dtype": _DTYPES[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def file_digest(
    header: bytes, tensor_digests: Mapping[str, str], order: list[str], algorithm: str = DEFAULT_ALGORITHM
) -> str:
    """A tensor file's checksum: the hash of its header bytes and its tensors' digests, in file order."""
    digest = new_hasher(algorithm, header)
    for name in order:
        digest.update(bytes.fromhex(tensor_digests.get(name, "00")))
    return digest.hexdigest()


def write_tensor_file(
    path: Path,
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    compression: str = "none",
    key: bytes | None = None,
    algorithm: str = DEFAULT_ALGORITHM,
) -> FileDigest:
    """Write CPU, contiguous ``tensors`` to ``path`` (which must not exist) and fsync it.

    With ``key`` the (compressed) stream is encrypted with AES-256-GCM (see ``crypto``)."""
    header = _header(tensors, metadata)
    hasher = _Hasher(algorithm)
    try:
        with open(path, "xb", buffering=0) as raw:
            sealed = EncryptingWriter(raw, key) if key is not None else None
            stream = compressor(sealed or raw, compression)
            write_all(stream, header)
            handed = 0
            for name, tensor in tensors.items():
                data = _raw_bytes(tensor)
                for start in range(0, len(data), CHUNK):
                    chunk = data[start : start + CHUNK]
                    hasher.feed(name, chunk)
                    write_all(stream, chunk)
                    handed = start_writeback(raw, handed)
                hasher.done(name)
            if stream is not raw and stream is not sealed:
                stream.close()
            if sealed is not None:
                sealed.close()
            os.fsync(raw.fileno())  # while the hasher finishes
            size = raw.tell()
    finally:
        digests = hasher.result()
    encryption = ENCRYPTION if key is not None else None
    whole = file_digest(header, digests, list(tensors), algorithm)
    return FileDigest(whole, size, compression, digests, encryption, algorithm)


@dataclass
class _Layout:
    """A parsed safetensors header: its bytes, metadata and entries (name, dtype, shape, begin, end) in file order."""

    header: bytes
    metadata: dict[str, str]
    entries: list[tuple[str, torch.dtype, list[int], int, int]]


def _parse_header(head: bytes, read: Callable[[int], bytes], label: str, file_name: str) -> _Layout:
    """The header after its 8 length bytes ``head``; ``read(n)`` gives the next n bytes of the file."""
    if len(head) != 8:
        raise CheckpointCorruptError(label, [f"{file_name}: truncated header"])
    (length,) = struct.unpack("<Q", head)
    if length > 100 << 20:
        raise CheckpointCorruptError(label, [f"{file_name}: header length {length} is not plausible"])
    header_bytes = head + read(length)
    try:
        header = json.loads(header_bytes[8:])
        metadata = header.pop("__metadata__", None) or {}
        entries = []
        position = 0
        for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
            begin, end = entry["data_offsets"]
            dtype = _CODES.get(entry["dtype"])
            if begin != position or dtype is None:
                raise CheckpointCorruptError(label, [f"{file_name}: header entry of tensor {name!r} is invalid"])
            entries.append((name, dtype, list(entry["shape"]), begin, end))
            position = end
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CheckpointCorruptError(label, [f"{file_name}: header is not valid"]) from None
    return _Layout(header_bytes, metadata, entries)


@dataclass
class _Read:
    """What reading one tensor file found: the tensors, the digests of what was read, its size, problems."""

    layout: _Layout | None
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    size: int = -1
    problems: list[str] = field(default_factory=list)


def read_tensor_file(
    path: Path,
    expected: Mapping[str, Any] | None,
    label: str,
    key: Callable[[], bytes] | None = None,
    algorithm: str = DEFAULT_ALGORITHM,
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """Read every tensor of ``path``, checking the bytes against ``expected`` (a manifest entry
    whose digests were made with ``algorithm``).

    Returns the tensors, the file's metadata and a list of problems (empty when the file is
    intact). The tensors are built from the very bytes that were hashed: one pass over the file.
    ``key`` gives the decryption key when the manifest says the file is encrypted.
    """
    entry = expected or {}
    if entry.get("encryption") or entry.get("compression", "none") != "none":
        found = _read_streamed(path, entry, label, key, algorithm)
    else:
        found = _read_mapped(path, label, algorithm)
    layout = found.layout
    if expected is not None and layout is not None:
        order = [name for name, *_ in layout.entries if name in found.digests]
        whole = file_digest(layout.header, found.digests, order, algorithm)
        found.problems.extend(_compare(path.name, expected, whole, found.size, found.digests, algorithm))
    return found.tensors, layout.metadata if layout else {}, found.problems


def _read_mapped(path: Path, label: str, algorithm: str) -> _Read:
    """A plain file: tensors as views of a private memory map, hashed on threads that fault the pages in."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < 8:
            raise CheckpointCorruptError(label, [f"{path.name}: truncated header"])
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    position = 8

    def read(count: int) -> bytes:
        nonlocal position
        position += count
        return mapped[position - count : position]

    layout = _parse_header(mapped[:8], read, label, path.name)
    found = _Read(layout, size=size)
    base = len(layout.header)
    ranges: dict[str, tuple[int, int]] = {}
    for name, dtype, shape, begin, end in layout.entries:
        if base + end > size:
            found.problems.append(f"{path.name}: truncated inside tensor {name!r}")
            break
        ranges[name] = (base + begin, base + end)
        if end == begin:
            found.tensors[name] = torch.empty(shape, dtype=dtype)
        else:
            count = (end - begin) // _element_size(dtype)
            found.tensors[name] = torch.frombuffer(mapped, dtype=dtype, count=count, offset=base + begin).reshape(shape)
    found.digests = hash_ranges(mapped, ranges, algorithm)
    return found


def hash_ranges(
    source: mmap.mmap, ranges: Mapping[str, tuple[int, int]], algorithm: str, threads: int = HASH_THREADS
) -> dict[str, str]:
    """The digest of each ``(start, stop)`` byte range of a memory map, on ``threads`` threads.

    The largest ranges go first, each on one thread, so the threads finish together; a range
    larger than an even share is hashed alone by BLAKE3's own threads instead. Each chunk's
    pages are mapped in one call before it is hashed (not one fault per 64 KiB)."""
    whole = memoryview(source)
    size = {name: stop - start for name, (start, stop) in ranges.items()}
    share = sum(size.values()) // max(1, threads)
    order = sorted(ranges, key=lambda name: -size[name])

    def one(name: str, workers: int) -> str:
        start, stop = ranges[name]
        hasher = new_hasher(algorithm, threads=workers)
        for first in range(start, stop, CHUNK):
            last = min(first + CHUNK, stop)
            _populate(source, first, last)
            hasher.update(whole[first:last])
        return hasher.hexdigest()

    big = [name for name in order if threads > 1 and size[name] > share and size[name] >= _BIG]
    digests = {name: one(name, threads) for name in big}
    rest = [name for name in order if name not in digests]
    if threads <= 1 or len(rest) <= 1:
        digests.update((name, one(name, 1)) for name in rest)
        return digests
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="unitrack-hash") as pool:
        digests.update(zip(rest, pool.map(lambda name: one(name, 1), rest), strict=True))
    return digests


_BIG = 32 << 20
_MADV_POPULATE_READ = 22  # Linux 5.14+


def _populate(source: mmap.mmap, start: int, stop: int) -> None:
    if stop <= start or not hasattr(source, "madvise"):
        return
    aligned = start - start % mmap.PAGESIZE
    try:
        source.madvise(_MADV_POPULATE_READ, aligned, stop - aligned)
    except OSError:  # an older kernel: the hash faults the pages in itself
        pass


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _read_streamed(
    path: Path, expected: Mapping[str, Any], label: str, key: Callable[[], bytes] | None, algorithm: str
) -> _Read:
    """A compressed or encrypted file: read into fresh buffers chunk by chunk, each chunk hashed on a thread."""
    found = _Read(None)
    with open(path, "rb", buffering=0) as raw:
        source: Any = raw
        if expected.get("encryption"):
            if key is None:
                raise CheckpointError(f"{path} is encrypted: give the key")
            source = DecryptingReader(raw, key(), label, path.name)
        stream = decompressor(source, expected.get("compression", "none"))
        hasher = _Hasher(algorithm)
        try:
            found.layout = _parse_header(stream.read(8), stream.read, label, path.name)
            for name, dtype, shape, begin, end in found.layout.entries:
                buffer = torch.empty(end - begin, dtype=torch.uint8)
                view = buffer.numpy().data.cast("B") if end > begin else memoryview(bytearray())
                for start in range(0, len(view), CHUNK):
                    chunk = view[start : start + CHUNK]
                    got = read_exact(stream, chunk)
                    hasher.feed(name, chunk[:got])
                    if got < len(chunk):
                        found.problems.append(f"{path.name}: truncated inside tensor {name!r}")
                        break
                hasher.done(name)
                if found.problems:
                    break
                found.tensors[name] = buffer.view(dtype).reshape(shape)
            for reader in (stream, source):
                if reader is not raw:
                    while reader.read(CHUNK):
                        pass
            found.size = raw.seek(0, os.SEEK_END)
        except (OSError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, CheckpointCorruptError):
                raise
            found.problems.append(f"{path.name}: unreadable ({type(exc).__name__}: {exc})")
        finally:
            found.digests = hasher.result()
    return found


def _compare(
    file_name: str, expected: Mapping[str, Any], whole: str, size: int, digests: Mapping[str, str], algorithm: str
) -> list[str]:
    problems = []
    label = label_of(algorithm)
    wanted = expected.get("tensors", {})
    for name, digest in wanted.items():
        if name not in digests:
            problems.append(f"{file_name}: tensor {name!r} is missing")
        elif digests[name] != digest:
            problems.append(f"{file_name}: tensor {name!r} fails its {label}")
    for name in digests.keys() - wanted.keys():
        problems.append(f"{file_name}: tensor {name!r} is not in the manifest")
    if whole != entry_digest(expected):
        problems.append(f"{file_name}: file fails its {label}" + ("" if problems else " (its header changed)"))
    if size >= 0 and size != expected.get("size"):
        problems.append(f"{file_name}: size is {size} bytes, the manifest says {expected.get('size')}")
    return problems


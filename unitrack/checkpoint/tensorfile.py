"""Tensor files in the safetensors format, written and read with SHA-256 computed on the way.

Tensor bytes go straight between the tensors' memory and the file in chunks, while helper
threads hash the tensors (hashlib releases the GIL). So a save costs about one sequential
write and a load about one sequential read, with the checksums for free, and a damaged tensor
can be named. Every byte is hashed once: the file's checksum is the SHA-256 of its header
followed by its tensors' SHA-256 digests in file order (a hash tree), plus its exact size. A
compressed file (gzip, zstd) holds the same safetensors bytes; its checksums are those of the
uncompressed bytes, and its size that of the compressed file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import queue
import struct
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unitrack.checkpoint.crypto import ALGORITHM, DecryptingReader, EncryptingWriter
from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointError

CHUNK = 8 << 20
HASH_THREADS = max(1, min(4, (os.cpu_count() or 1)))
COMPRESSION_SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}

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
    """What the manifest records of one tensor file."""

    sha256: str
    size: int
    compression: str
    tensors: dict[str, str] = field(default_factory=dict)
    encryption: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"sha256": self.sha256, "size": self.size, "compression": self.compression, "tensors": self.tensors}
        if self.encryption:
            data["encryption"] = self.encryption
        return data


class _HashWorker(threading.Thread):
    """Hashes the chunks handed to it, in order, off the caller's thread."""

    def __init__(self) -> None:
        super().__init__(name="unitrack-hash", daemon=True)
        self.work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.digests: dict[str, str] = {}
        self.start()

    def run(self) -> None:
        current: dict[str, Any] = {}
        while (item := self.work.get()) is not None:
            key, chunk = item
            if chunk is None:
                self.digests[key] = current.pop(key, hashlib.sha256()).hexdigest()
            else:
                current.setdefault(key, hashlib.sha256()).update(chunk)


class _Hasher:
    """SHA-256 of each tensor, on a few threads: tensors are dealt out in turn, so several are
    hashed at once while the caller reads or writes the next chunk."""

    def __init__(self) -> None:
        self._workers = [_HashWorker() for _ in range(HASH_THREADS)]
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


def file_digest(header: bytes, tensor_digests: Mapping[str, str], order: list[str]) -> str:
    """A tensor file's checksum: SHA-256 over its header bytes and its tensors' digests, in file order."""
    digest = hashlib.sha256(header)
    for name in order:
        digest.update(bytes.fromhex(tensor_digests.get(name, "00")))
    return digest.hexdigest()


def write_tensor_file(
    path: Path,
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    compression: str = "none",
    key: bytes | None = None,
) -> FileDigest:
    """Write CPU, contiguous ``tensors`` to ``path`` (which must not exist) and fsync it.

    With ``key`` the (compressed) stream is encrypted with AES-256-GCM (see ``crypto``)."""
    header = _header(tensors, metadata)
    hasher = _Hasher()
    try:
        with open(path, "xb", buffering=0) as raw:
            sealed = EncryptingWriter(raw, key) if key is not None else None
            stream = _compressor(sealed or raw, compression)
            _write_all(stream, header)
            handed = 0
            for name, tensor in tensors.items():
                data = _raw_bytes(tensor)
                for start in range(0, len(data), CHUNK):
                    chunk = data[start : start + CHUNK]
                    hasher.feed(name, chunk)
                    _write_all(stream, chunk)
                    handed = _start_writeback(raw, handed)
                hasher.done(name)
            if stream is not raw and stream is not sealed:
                stream.close()
            if sealed is not None:
                sealed.close()
            os.fsync(raw.fileno())  # while the hasher finishes
            size = raw.tell()
    finally:
        digests = hasher.result()
    encryption = ALGORITHM if key is not None else None
    return FileDigest(file_digest(header, digests, list(tensors)), size, compression, digests, encryption)


def _libc_sync_file_range() -> Any:
    """Linux's sync_file_range(2) through ctypes, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return function


_SYNC_FILE_RANGE = _libc_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(raw: io.FileIO, since: int) -> int:
    """Start writing the bytes after ``since`` to the disk now, without waiting and keeping them
    cached, so the disk works while we hash and the final fsync has little left. Returns the new offset."""
    end = raw.tell()
    if _SYNC_FILE_RANGE is not None and end > since:
        _SYNC_FILE_RANGE(raw.fileno(), since, end - since, _SYNC_FILE_RANGE_WRITE)
    return end


def _write_all(stream: Any, data: Any) -> None:
    if not isinstance(stream, io.FileIO):
        stream.write(data)  # a compressor: takes everything at once
        return
    view = memoryview(data)
    while view:
        view = view[stream.write(view) :]


def _compressor(sink: Any, compression: str) -> Any:
    if compression == "none":
        return sink
    if compression == "gzip":
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=3, mtime=0)
    if compression == "zstd":
        return _zstd().ZstdCompressor(level=3, threads=-1).stream_writer(sink, closefd=False)
    raise CheckpointError(f"unknown compression {compression!r}: use none, gzip or zstd")


def _decompressor(source: Any, compression: str) -> Any:
    if compression == "none":
        return source
    if compression == "gzip":
        return gzip.GzipFile(fileobj=source, mode="rb")
    if compression == "zstd":
        return _zstd().ZstdDecompressor().stream_reader(source, closefd=False)
    raise CheckpointError(f"unknown compression {compression!r}")


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:
        raise CheckpointError("compression 'zstd' needs the zstandard package: pip install 'unitrack[zstd]'") from None
    return zstandard


def _read_exact(stream: Any, buffer: memoryview) -> int:
    got = 0
    while got < len(buffer):
        count = stream.readinto(buffer[got:])
        if not count:
            break
        got += count
    return got


def read_tensor_file(
    path: Path, expected: Mapping[str, Any] | None, label: str, key: Callable[[], bytes] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """Read every tensor of ``path``, checking the bytes against ``expected`` (a manifest entry).

    Returns the tensors, the file's metadata and a list of problems (empty when the file is
    intact). The tensors are built from the very bytes that were hashed: one read of the file.
    ``key`` gives the decryption key when the manifest says the file is encrypted.
    """
    compression = (expected or {}).get("compression", "none")
    problems: list[str] = []
    tensors: dict[str, torch.Tensor] = {}
    order: list[str] = []
    header_bytes = b""
    metadata: dict[str, str] = {}
    with open(path, "rb", buffering=0) as raw:
        source: Any = raw
        if (expected or {}).get("encryption"):
            if key is None:
                raise CheckpointError(f"{path} is encrypted: give the key")
            source = DecryptingReader(raw, key(), label, path.name)
        stream = _decompressor(source, compression)
        hasher = _Hasher()
        try:
            head = stream.read(8)
            if len(head) != 8:
                raise CheckpointCorruptError(label, [f"{path.name}: truncated header"])
            (length,) = struct.unpack("<Q", head)
            if length > 100 << 20:
                raise CheckpointCorruptError(label, [f"{path.name}: header length {length} is not plausible"])
            header_bytes = head + stream.read(length)
            try:
                header = json.loads(header_bytes[8:])
            except ValueError:
                raise CheckpointCorruptError(label, [f"{path.name}: header is not valid JSON"]) from None
            metadata = header.pop("__metadata__", None) or {}
            position = 0
            for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
                begin, end = entry["data_offsets"]
                dtype = _CODES.get(entry["dtype"])
                if begin != position or dtype is None:
                    raise CheckpointCorruptError(label, [f"{path.name}: header entry of tensor {name!r} is invalid"])
                order.append(name)
                buffer = torch.empty(end - begin, dtype=torch.uint8)
                view = buffer.numpy().data.cast("B") if end > begin else memoryview(bytearray())
                for start in range(0, len(view), CHUNK):
                    chunk = view[start : start + CHUNK]
                    got = _read_exact(stream, chunk)
                    hasher.feed(name, chunk[:got])
                    if got < len(chunk):
                        problems.append(f"{path.name}: truncated inside tensor {name!r}")
                        break
                hasher.done(name)
                if problems:
                    break
                tensors[name] = buffer.view(dtype).reshape(entry["shape"])
                position = end
            if stream is not raw:
                while stream.read(CHUNK):
                    pass
            if source is not raw:
                while source.read(CHUNK):
                    pass
            size = raw.seek(0, os.SEEK_END)
        except (OSError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, CheckpointCorruptError):
                raise
            problems.append(f"{path.name}: unreadable ({type(exc).__name__}: {exc})")
            size = -1
        finally:
            digests = hasher.result()
    if expected is not None:
        sha = file_digest(header_bytes, digests, order)
        problems.extend(_compare(path.name, expected, sha, size, digests))
    return tensors, metadata, problems


def _compare(
    file_name: str, expected: Mapping[str, Any], sha: str, size: int, digests: Mapping[str, str]
) -> list[str]:
    problems = []
    wanted = expected.get("tensors", {})
    for name, digest in wanted.items():
        if name not in digests:
            problems.append(f"{file_name}: tensor {name!r} is missing")
        elif digests[name] != digest:
            problems.append(f"{file_name}: tensor {name!r} fails its SHA-256")
    for name in digests.keys() - wanted.keys():
        problems.append(f"{file_name}: tensor {name!r} is not in the manifest")
    if sha != expected.get("sha256"):
        problems.append(f"{file_name}: file fails its SHA-256" + ("" if problems else " (its header changed)"))
    if size >= 0 and size != expected.get("size"):
        problems.append(f"{file_name}: size is {size} bytes, the manifest says {expected.get('size')}")
    return problems


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size



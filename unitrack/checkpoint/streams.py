"""The byte streams of a tensor file: writing to the disk as we go, compression, exact reads.

Kept apart from the safetensors layout and the checksums (``tensorfile``), which use them.
"""

from __future__ import annotations

import gzip
import io
import sys
from typing import Any

from unitrack.checkpoint.errors import CheckpointError

COMPRESSION_SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}


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


def start_writeback(raw: io.FileIO, since: int) -> int:
    """Start writing the bytes after ``since`` to the disk now, without waiting and keeping them
    cached, so the disk works while we hash and the final fsync has little left. Returns the new offset."""
    end = raw.tell()
    if _SYNC_FILE_RANGE is not None and end > since:
        _SYNC_FILE_RANGE(raw.fileno(), since, end - since, _SYNC_FILE_RANGE_WRITE)
    return end


def write_all(stream: Any, data: Any) -> None:
    if not isinstance(stream, io.FileIO):
        stream.write(data)  # a compressor: takes everything at once
        return
    view = memoryview(data)
    while view:
        view = view[stream.write(view) :]


def compressor(sink: Any, compression: str) -> Any:
    if compression == "none":
        return sink
    if compression == "gzip":
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=3, mtime=0)
    if compression == "zstd":
        return _zstd().ZstdCompressor(level=3, threads=-1).stream_writer(sink, closefd=False)
    raise CheckpointError(f"unknown compression {compression!r}: use none, gzip or zstd")


def decompressor(source: Any, compression: str) -> Any:
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


def read_exact(stream: Any, buffer: memoryview) -> int:
    got = 0
    while got < len(buffer):
        count = stream.readinto(buffer[got:])
        if not count:
            break
        got += count
    return got

"""Optional encryption at rest: AES-256-GCM over a tensor file's byte stream, in authenticated frames.

The stream starts with a magic, a random nonce prefix and a fingerprint of the key (so a wrong
key is named as such, not mistaken for damage). Each frame of up to 8 MB is sealed with the
frame's index and a "last frame" flag as associated data, so frames cannot be reordered, and a
file cut short is detected. The key is 32 bytes from an environment variable (64 hex digits or
base64); it is never written anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from typing import Any, BinaryIO

from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointError

ALGORITHM = "aes-256-gcm"
DEFAULT_KEY_ENV = "UNITRACK_CHECKPOINT_KEY"
MAGIC = b"UTAESGC1"
FRAME = 8 << 20
_FRAME_HEAD = struct.Struct("<IB")


def load_key(env_name: str) -> bytes:
    """The 32-byte key from ``$env_name`` (64 hex digits or base64); a clear error when missing or malformed."""
    text = os.environ.get(env_name, "").strip()
    if not text:
        raise CheckpointError(
            f"checkpoint encryption needs a key in ${env_name}: 32 random bytes as 64 hex digits or base64 "
            '(e.g. python -c "import secrets; print(secrets.token_hex(32))")'
        )
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise CheckpointError(f"${env_name} must hold 32 bytes as 64 hex digits or base64, not {len(text)} characters")
    return key


def _aead(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise CheckpointError("checkpoint encryption needs the cryptography package: pip install 'unitrack[crypto]'") from None
    return AESGCM(key)


def _fingerprint(key: bytes) -> bytes:
    return hashlib.sha256(b"unitrack-checkpoint-key" + key).digest()[:8]


def _associated(index: int, last: bool) -> bytes:
    return struct.pack("<QB", index, last)


class EncryptingWriter:
    """A file-like sink that seals what is written to it into frames on ``raw``."""

    def __init__(self, raw: BinaryIO, key: bytes) -> None:
        self._raw = raw
        self._aead = _aead(key)
        self._prefix = os.urandom(8)
        self._index = 0
        self._pending = bytearray()
        self._write_raw(MAGIC + self._prefix + _fingerprint(key))

    def write(self, data: Any) -> int:
        self._pending += data
        while len(self._pending) >= FRAME:
            self._seal(bytes(self._pending[:FRAME]), last=False)
            del self._pending[:FRAME]
        return len(data)

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        """Seal the last frame (possibly empty): without it a reader knows the file was cut short."""
        self._seal(bytes(self._pending), last=True)
        self._pending = bytearray()

    def _seal(self, plain: bytes, last: bool) -> None:
        nonce = self._prefix + struct.pack("<I", self._index)
        sealed = self._aead.encrypt(nonce, plain, _associated(self._index, last))
        self._write_raw(_FRAME_HEAD.pack(len(sealed), last) + sealed)
        self._index += 1

    def _write_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._raw.write(view) :]


class DecryptingReader:
    """Reads back what :class:`EncryptingWriter` wrote, authenticating every frame."""

    def __init__(self, raw: BinaryIO, key: bytes, label: str, file_name: str) -> None:
        self._raw = raw
        self._label, self._file = label, file_name
        head = raw.read(24)
        if len(head) != 24 or head[:8] != MAGIC:
            raise CheckpointCorruptError(label, [f"{file_name}: not an encrypted checkpoint stream"])
        if head[16:] != _fingerprint(key):
            raise CheckpointError(f"cannot decrypt {file_name} of checkpoint {label}: wrong key")
        self._aead = _aead(key)
        self._prefix = head[8:16]
        self._index = 0
        self._done = False
        self._buffer = b""
        self._offset = 0

    def _next_frame(self) -> bool:
        if self._done:
            return False
        head = self._raw.read(_FRAME_HEAD.size)
        if len(head) < _FRAME_HEAD.size:
            raise CheckpointCorruptError(self._label, [f"{self._file}: encrypted stream is cut short"])
        length, last = _FRAME_HEAD.unpack(head)
        sealed = self._raw.read(length)
        nonce = self._prefix + struct.pack("<I", self._index)
        try:
            self._buffer = self._aead.decrypt(nonce, sealed, _associated(self._index, bool(last)))
        except Exception:
            raise CheckpointCorruptError(self._label, [f"{self._file}: encrypted frame {self._index} fails authentication"]) from None
        self._offset = 0
        self._index += 1
        self._done = bool(last)
        return True

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        while self._offset >= len(self._buffer):
            if not self._next_frame():
                return 0
        count = min(len(view), len(self._buffer) - self._offset)
        view[:count] = self._buffer[self._offset : self._offset + count]
        self._offset += count
        return count

    def read(self, size: int = -1) -> bytes:
        chunks = []
        wanted = size if size >= 0 else 1 << 62
        while wanted > 0:
            piece = bytearray(min(wanted, FRAME))
            count = self.readinto(piece)
            if count == 0:
                break
            chunks.append(bytes(piece[:count]))
            wanted -= count
        return b"".join(chunks)

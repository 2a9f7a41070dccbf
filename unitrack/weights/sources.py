"""Where weights come from: a snapshot manifest, a checkpoint file, an array dict, a backend's artifacts.

Every source gives the same two things: each tensor's shape and dtype, and the tensor itself as
an array over the file's pages (memory-mapped, not read into memory) where the format allows:
snapshot objects and ``.safetensors`` files are mapped directly; ``.pt`` / ``.pth`` files go
through ``torch.load(weights_only=True, mmap=True)``.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unitrack.checkpoint.catalog import is_sharded_checkpoint
from unitrack.weights.arrays import BFLOAT16, HostTensor, host_tensors
from unitrack.weights.objects import map_object
from unitrack.weights.snapshots import manifest_algorithm, read_manifest, zero_count

SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": BFLOAT16,
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


@dataclass(frozen=True)
class TensorMeta:
    shape: tuple[int, ...]
    dtype: str
    digest: str | None = None  # content hash when the source knows it (snapshots): equal means unchanged
    zeros: int | None = None  # how many elements are zero, when known (snapshots, tensors in memory)


def storage_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype a tensor's bytes are read as (bfloat16 as its 16-bit patterns)."""
    return np.dtype(np.uint16) if dtype == BFLOAT16 else np.dtype(dtype)


class WeightSource:
    """A set of named tensors; ``label`` says where they came from (shown in reports)."""

    label: str

    def tensors(self) -> dict[str, TensorMeta]:
        raise NotImplementedError

    def array(self, name: str) -> np.ndarray:
        raise NotImplementedError


class ManifestSource(WeightSource):
    """A unitrack snapshot: its manifest, its tensors mapped from the store's objects."""

    def __init__(self, store_root: Path, manifest: Path, label: str | None = None) -> None:
        self.store_root = Path(store_root)
        self.manifest = read_manifest(manifest)
        try:
            self.algorithm = manifest_algorithm(self.manifest)
        except ValueError as exc:
            raise ValueError(f"snapshot manifest {manifest}: {exc}") from None
        self.step = int(self.manifest.get("step") or 0)
        self.label = label or f"snapshot {self.manifest.get('name', Path(manifest).stem)}"
        self._meta = {
            name: TensorMeta(tuple(entry["shape"]), entry["dtype"], entry["digest"], entry.get("zeros"))
            for name, entry in self.manifest["tensors"].items()
        }

    def tensors(self) -> dict[str, TensorMeta]:
        return self._meta

    def array(self, name: str) -> np.ndarray:
        meta = self._meta[name]
        return map_object(self.store_root, meta.digest or "", storage_dtype(meta.dtype), meta.shape, self.algorithm)


class SafetensorsSource(WeightSource):
    """A ``.safetensors`` file, parsed here and mapped once: each tensor is a view of the map."""

    def __init__(self, path: Path, label: str | None = None) -> None:
        self.path = Path(path)
        self.label = label or str(path)
        with open(self.path, "rb") as handle:
            size = self.path.stat().st_size
            if size < 8:
                raise ValueError(f"{self.path} is not a safetensors file (too short)")
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > size - 8:
                raise ValueError(f"{self.path} is not a safetensors file (header length {header_len})")
            try:
                header = json.loads(handle.read(header_len))
            except ValueError as exc:
                raise ValueError(f"{self.path}: unreadable safetensors header: {exc}") from None
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size > 8 + header_len else None
        self._base = 8 + header_len
        self._entries: dict[str, tuple[TensorMeta, int, int]] = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            dtype = SAFETENSORS_DTYPES.get(entry.get("dtype"))
            if dtype is None:
                raise ValueError(f"{self.path}: tensor {name!r} has dtype {entry.get('dtype')!r}, not supported")
            start, stop = entry["data_offsets"]
            self._entries[name] = (TensorMeta(tuple(entry["shape"]), dtype), start, stop)

    def tensors(self) -> dict[str, TensorMeta]:
        return {name: meta for name, (meta, _, _) in self._entries.items()}

    def array(self, name: str) -> np.ndarray:
        meta, start, stop = self._entries[name]
        dtype = storage_dtype(meta.dtype)
        if stop == start or self._map is None:
            return np.empty(meta.shape, dtype=dtype)
        count = (stop - start) // dtype.itemsize
        return np.frombuffer(self._map, dtype=dtype, count=count, offset=self._base + start).reshape(meta.shape)


class ArraySource(WeightSource):
    """Tensors already in memory: a model, a state dict, a pytree, a dict of NumPy arrays."""

    def __init__(self, tensors: Mapping[str, HostTensor], label: str) -> None:
        self._tensors = dict(tensors)
        self.label = label
        self._meta: dict[str, TensorMeta] | None = None

    @classmethod
    def of(cls, weights: Any, label: str = "in memory") -> ArraySource:
        return cls(host_tensors(weights), label)

    def tensors(self) -> dict[str, TensorMeta]:
        if self._meta is None:  # counted once: the tensors in memory do not change under a source
            self._meta = {
                name: TensorMeta(tuple(t.array.shape), t.dtype, zeros=zero_count(t.array, t.dtype))
                for name, t in self._tensors.items()
            }
        return self._meta

    def array(self, name: str) -> np.ndarray:
        return self._tensors[name].array


def torch_file_source(path: Path, label: str | None = None) -> ArraySource:
    """A ``.pt`` / ``.pth`` checkpoint, loaded with ``weights_only=True`` and memory-mapped."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a weights-only torch checkpoint: {type(exc).__name__}: {exc}") from None
    if isinstance(loaded, Mapping):
        for key in _STATE_DICT_KEYS:  # a training checkpoint that wraps the state dict
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    return ArraySource(host_tensors(loaded if isinstance(loaded, Mapping) else {"tensor": loaded}), label or str(path))


def file_source(path: Path, label: str | None = None) -> WeightSource:
    """The weights in a file (safetensors, torch, a snapshot manifest) or a folder holding one."""
    path = Path(path)
    if path.is_dir() and is_sharded_checkpoint(path):  # DCP shards: gathered whole, verified on the way
        from unitrack.checkpoint.storage import read_weights

        return ArraySource.of(read_weights(path), label or str(path))
    if path.is_dir():
        return file_source(weights_file_in(path), label)
    if not path.exists():
        raise FileNotFoundError(f"no weights file {path}")
    if path.suffix == ".safetensors":
        return SafetensorsSource(path, label)
    if path.suffix in TORCH_SUFFIXES:
        return torch_file_source(path, label)
    raise ValueError(f"{path}: unknown weights format (expected .safetensors, {', '.join(TORCH_SUFFIXES)})")


def weights_file_in(folder: Path) -> Path:
    """The model weights inside a folder (a checkpoint, a downloaded W&B / MLflow artifact)."""
    candidates = sorted(p for p in folder.rglob("*") if p.suffix in (".safetensors", *TORCH_SUFFIXES) and p.is_file())
    models = [p for p in candidates if p.stem == "model"]
    chosen = models or [p for p in candidates if p.stem != "state"]
    if not chosen:
        raise FileNotFoundError(f"no weights file (.safetensors, .pt, .pth) in {folder}")
    if len(chosen) > 1 and not models:
        names = ", ".join(str(p.relative_to(folder)) for p in chosen[:5])
        raise ValueError(f"{folder} holds several weights files ({names}); name one")
    return chosen[-1]

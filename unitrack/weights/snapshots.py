"""Weight snapshots: a small JSON manifest per snapshot, tensors content-addressed in the store.

``<run>/snapshots/<name>.json`` lists each tensor's digest (BLAKE3, named by the manifest's
``algorithm``; manifests of format 1 hold SHA-256s), shape and dtype; the bytes live once in
``<store>/objects/<algorithm>/``. Taking a snapshot hashes only tensors that may have changed (on the tracker's job thread): a torch
tensor whose data pointer and in-place version counter are what they were at the last snapshot
reuses its digest without reading its bytes, so a frozen layer costs nothing, not even a hash.
Retention (``weights:`` config) keeps the first snapshot, the most recent ones, and every Nth
older one; :func:`collect_snapshot_objects` deletes objects no manifest references any more.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unitrack.events import HISTOGRAM, SNAPSHOT, HistogramData, RecordSink, SnapshotData
from unitrack.hashing import LEGACY_ALGORITHM, check_algorithm
from unitrack.store.fsio import atomic_write_json
from unitrack.store.layout import RunPaths, StoreLayout
from unitrack.weights.arrays import HostTensor, as_float, host_tensors
from unitrack.weights.objects import ALGORITHM, GC_GRACE_S, collect_garbage, put_object
from unitrack.weights.stats import histogram

MANIFEST_FORMAT = 2  # 2 names its "algorithm"; 1 (earlier versions) meant SHA-256
CHANGE_L2_METRIC = "weights/change_l2"
CHANGE_RELATIVE_METRIC = "weights/change_relative"
_TAG = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class SnapshotInfo:
    """One stored snapshot: ``manifest`` is its JSON file; ``new_bytes`` what it added to the store."""

    name: str
    step: int
    tag: str | None
    manifest: Path
    tensors: int
    new_bytes: int | None


def zero_count(array: np.ndarray, dtype: str) -> int:
    """How many elements of a tensor are zero (a pruned layer's sparsity is this over its size)."""
    return int(array.size - np.count_nonzero(as_float(array, dtype)))


def snapshots_dir(run_dir: Path) -> Path:
    return RunPaths(Path(run_dir)).snapshots


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"unreadable snapshot manifest {path}: {exc}") from None
    if not isinstance(data, dict) or "tensors" not in data:
        raise ValueError(f"{path} is not a snapshot manifest (no 'tensors')")
    return data


def manifest_algorithm(manifest: dict[str, Any]) -> str:
    """The hash algorithm of a snapshot manifest's digests (SHA-256 for format 1, which named none)."""
    return check_algorithm(manifest.get("algorithm") or LEGACY_ALGORITHM)


def list_manifests(run_dir: Path) -> list[Path]:
    """The run's snapshot manifests, oldest first."""
    folder = snapshots_dir(run_dir)
    return sorted(folder.glob("*.json")) if folder.exists() else []


class _Digest:
    """A tensor's digest, filled in by the snapshot job that hashes it (jobs run in order, so a
    later snapshot that reuses it finds it set)."""

    __slots__ = ("value", "zeros")

    def __init__(self, value: str | None = None) -> None:
        self.value = value
        self.zeros: int | None = None  # how many elements are zero (sparsity, for pruned layers)


class SnapshotWriter:
    """Takes the snapshots of one run; remembers digests so unchanged torch tensors are not re-read.

    With ``submit`` (the tracker's background job queue) the training thread only copies the
    tensors that may have changed; hashing, writing the objects and the manifest happen on the
    job thread, at most ``MAX_PENDING`` snapshots behind (then ``take`` waits). Without it,
    ``take`` does everything before returning.
    """

    MAX_PENDING = 2

    def __init__(
        self,
        store_root: Path,
        run_dir: Path,
        *,
        keep_recent: int | None = None,
        thin_every: int = 1,
        histograms: bool = False,
        emit: RecordSink | None = None,
        submit: Callable[..., None] | None = None,
        log_metrics: Callable[[dict[str, float], int], None] | None = None,
    ) -> None:
        self.store_root = Path(store_root)
        self.run_dir = Path(run_dir)
        self.keep_recent = keep_recent
        self.thin_every = thin_every
        self.histograms = histograms
        self._emit = emit
        self._submit = submit
        self._log_metrics = log_metrics
        self._previous: Path | None = None
        self._room = threading.Semaphore(self.MAX_PENDING)
        self._known: dict[str, tuple[tuple[int, int], _Digest]] = {}
        self._count = len(list_manifests(self.run_dir))
        self.thinned = 0

    def take(self, weights: Any, step: int, tag: str | None = None) -> SnapshotInfo:
        """Snapshot ``weights``; in the background, ``new_bytes`` of the result is None (not known yet)."""
        tensors = host_tensors(weights)
        if not tensors:
            raise ValueError(f"no tensors to snapshot in the {type(weights).__name__} given")
        name = f"{self._count:06d}-step{step}" + (f"-{_TAG.sub('_', tag)}" if tag else "")
        self._count += 1
        path = snapshots_dir(self.run_dir) / f"{name}.json"
        work: list[tuple[str, HostTensor, _Digest, bool]] = []  # name, tensor, digest, whether to hash it
        for tensor_name, tensor in tensors.items():
            known = self._known.get(tensor_name)
            if tensor.version is not None and known is not None and known[0] == tensor.version:
                work.append((tensor_name, tensor, known[1], False))
                continue
            if self._submit is not None:  # the training loop may change it while the job runs
                tensor = HostTensor(np.array(tensor.array, copy=True), tensor.dtype)
            digest = _Digest()
            work.append((tensor_name, tensor, digest, True))
            if tensors[tensor_name].version is not None:
                self._known[tensor_name] = (tensors[tensor_name].version, digest)  # type: ignore[assignment]
        self._room.acquire()
        if self._submit is None:
            return self._write(name, step, tag, path, work)
        self._submit(self._write, name, step, tag, path, work)
        return SnapshotInfo(name, step, tag, path, len(work), None)

    def _write(
        self, name: str, step: int, tag: str | None, path: Path, work: list[tuple[str, HostTensor, _Digest, bool]]
    ) -> SnapshotInfo:
        try:
            entries: dict[str, dict[str, Any]] = {}
            histograms: dict[str, Any] = {}
            new_bytes = 0
            for tensor_name, tensor, digest, needs_hash in work:
                digest.value, is_new = put_object(self.store_root, tensor.array, None if needs_hash else digest.value)
                new_bytes += tensor.array.nbytes if is_new else 0
                if needs_hash:
                    digest.zeros = zero_count(tensor.array, tensor.dtype)
                entries[tensor_name] = {"digest": digest.value, "shape": list(tensor.array.shape), "dtype": tensor.dtype}
                if digest.zeros is not None:
                    entries[tensor_name]["zeros"] = digest.zeros
                if self.histograms and is_new and tensor.array.size:
                    summary = histogram(as_float(tensor.array, tensor.dtype))
                    if summary is not None:
                        histograms[tensor_name] = summary
            path.parent.mkdir(parents=True, exist_ok=True)
            manifest = {"format": MANIFEST_FORMAT, "algorithm": ALGORITHM, "name": name, "step": step, "tag": tag,
                        "time": time.time(), "tensors": entries}
            atomic_write_json(path, manifest)
            self._log_change(path, step)
            if self._emit is not None:
                relative = path.relative_to(self.store_root).as_posix()
                self._emit(SNAPSHOT, SnapshotData(name=name, step=step, tag=tag, manifest=relative))
                if histograms:
                    self._emit(HISTOGRAM, HistogramData(step=step, values=histograms))
            self.apply_retention()
            return SnapshotInfo(name, step, tag, path, len(entries), new_bytes)
        finally:
            self._room.release()

    def _log_change(self, path: Path, step: int) -> None:
        """Log how far all weights moved since the previous snapshot (``weights/change_l2``, ``weights/change_relative``)."""
        previous, self._previous = self._previous, path
        if self._log_metrics is None or previous is None or not previous.exists():
            return
        from unitrack.weights.compare import compare_sources  # compare reads snapshots: imported late
        from unitrack.weights.sources import ManifestSource

        before, after = ManifestSource(self.store_root, previous), ManifestSource(self.store_root, path)
        if before.tensors() == after.tensors():  # same digests: nothing moved, nothing to read
            self._log_metrics({CHANGE_L2_METRIC: 0.0, CHANGE_RELATIVE_METRIC: 0.0}, step)
            return
        total = compare_sources(before, after, per_row=False, threads=1).total()  # one core: training has the other
        self._log_metrics({CHANGE_L2_METRIC: total["l2"], CHANGE_RELATIVE_METRIC: total["relative"]}, step)

    def apply_retention(self) -> list[Path]:
        """Delete the manifests retention does not keep; return them (objects go at the next collection)."""
        doomed = manifests_to_thin(list_manifests(self.run_dir), self.keep_recent, self.thin_every)
        for path in doomed:
            path.unlink(missing_ok=True)
        self.thinned += len(doomed)
        return doomed

    def close(self) -> None:
        """After retention thinned snapshots, delete the objects nothing references any more (in the background)."""
        if self.thinned:
            if self._submit is None:
                collect_snapshot_objects(self.store_root)
            else:
                self._submit(collect_snapshot_objects, self.store_root)


def manifests_to_thin(manifests: list[Path], keep_recent: int | None, thin_every: int) -> list[Path]:
    """Which of ``manifests`` (oldest first) retention drops: never the first, nor the ``keep_recent`` newest;
    of the others, each whose sequence number (the name's prefix) is not a multiple of ``thin_every``.
    Numbers, not positions, decide, so thinning again later never drops a snapshot it kept."""
    if keep_recent is None or len(manifests) <= keep_recent + 1:
        return []
    older = manifests[1 : len(manifests) - keep_recent]
    return [path for path in older if _sequence(path) % thin_every != 0]


def _sequence(manifest: Path) -> int:
    prefix = manifest.name.split("-", 1)[0]
    return int(prefix) if prefix.isdigit() else 1


def referenced_digests(store_root: Path) -> set[str]:
    """Every digest some run's snapshot manifest references."""
    digests: set[str] = set()
    runs = StoreLayout(Path(store_root)).runs
    for manifest in (m for run in (runs.iterdir() if runs.exists() else ()) for m in RunPaths(run).snapshots.glob("*.json")):
        try:
            digests.update(entry["digest"] for entry in read_manifest(manifest)["tensors"].values())
        except (ValueError, KeyError, TypeError):
            continue  # an unreadable manifest protects nothing; the grace period covers one being written
    return digests


def collect_snapshot_objects(store_root: Path, grace_s: float = GC_GRACE_S) -> tuple[int, int]:
    """Delete objects no snapshot references (older than ``grace_s``); return (files, bytes) freed."""
    return collect_garbage(Path(store_root), referenced_digests(store_root), grace_s)


def remove_run_snapshots(store_root: Path, run_id: str, grace_s: float = GC_GRACE_S) -> tuple[int, int]:
    """Delete a run's snapshots, then the objects nothing references any more; return (files, bytes) freed.

    ``unitrack clean`` calls this for each run it removes.
    """
    folder = snapshots_dir(StoreLayout(Path(store_root)).run(run_id).root)
    if folder.exists():
        shutil.rmtree(folder)
    return collect_snapshot_objects(store_root, grace_s)

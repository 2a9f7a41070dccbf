"""The checkpoints of one run: saving (synchronous or in the background), retention, loading.

The tracker owns one :class:`CheckpointManager` and keeps its own methods thin. An
asynchronous save copies the state to CPU on the caller's thread (into buffers reused from the
previous save), then writes it on a background thread; one save is in flight at a time, and its
error surfaces on the next call. Loading, listing and ``flush`` wait for a pending save first.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from pathlib import Path
from typing import Any

from unitrack.checkpoint.crypto import load_key
from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointNotFoundError, CheckpointSaveError
from unitrack.checkpoint.locations import delete_info, read_info, s3_client
from unitrack.checkpoint.registry import CheckpointInfo, Registry, RetentionPolicy, fallback_order
from unitrack.checkpoint.s3 import S3Location, is_s3
from unitrack.checkpoint.storage import MANIFEST, STATE_JSON, manifest_checksum, remove_temporaries
from unitrack.events import (
    CHECKPOINT,
    CHECKPOINT_REMOVED,
    REGISTER_MODEL,
    REWIND,
    CheckpointData,
    CheckpointRemovedData,
    RecordSink,
    RewindData,
)
from unitrack.goals import lower_is_better
from unitrack.nonfinite import encode_number
from unitrack.store.layout import RunPaths

log = logging.getLogger("unitrack")



def policy_from(settings: Any) -> RetentionPolicy:
    return RetentionPolicy(
        monitor=settings.monitor,
        mode=settings.mode or ("min" if lower_is_better(settings.monitor or "", default=True) else "max"),
        keep_last=settings.keep_last,
        keep_best=settings.keep_best,
        keep_every_n_steps=settings.keep_every_n_steps,
        max_checkpoints=settings.max_checkpoints,
    )


def checkpoint_folder(run_dir: Path, run_id: str, checkpoint_dir: str | None) -> Path:
    """Where a run's checkpoints go: ``<checkpoint_dir>/<run id>`` or ``<run folder>/checkpoints``
    (also the staging folder of checkpoints bound for object storage)."""
    if checkpoint_dir is None or is_s3(checkpoint_dir):
        return RunPaths(run_dir).checkpoints
    return Path(checkpoint_dir).expanduser().absolute() / run_id


class CheckpointManager:
    """Saves, keeps and restores the checkpoints of one run."""

    def __init__(
        self, run_dir: Path, run_id: str, settings: Any, emit: RecordSink, config_hash: str, *, owner: bool = True
    ) -> None:
        """``owner=False`` reads the registry only (another distributed rank): it never removes the
        temporary folder of a save the owner may be making, nor registers what it finds."""
        self.settings = settings
        self.run_id = run_id
        self.owner = owner
        self.directory = checkpoint_folder(run_dir, run_id, settings.checkpoint_dir)
        self.remote = S3Location.parse(settings.checkpoint_dir).child(run_id) if is_s3(settings.checkpoint_dir) else None
        self.registry = Registry(run_dir, policy_from(settings))
        self._emit = emit
        self._config_hash = config_hash
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._buffers: dict[str, dict[str, Any]] = {"model": {}, "state": {}}
        if not owner:
            return
        for leftover in remove_temporaries(self.directory):
            log.warning("unitrack: removed %s, left by a save that never finished", leftover)
        if self.remote is not None:
            self._remove_incomplete_uploads()
        else:
            self._adopt_committed_orphans()

    def _remove_incomplete_uploads(self) -> None:
        """Delete what uploads that never finished left in object storage (a resumed run's prefix)."""
        from unitrack.checkpoint.s3 import remove_incomplete

        assert self.remote is not None
        try:
            for name in remove_incomplete(self.remote, s3_client(self.settings)):
                log.warning("unitrack: removed %s/%s, left by an upload that never finished", self.remote, name)
        except Exception as exc:  # unreachable storage: the save will say so; starting must not fail
            log.warning("unitrack: could not look for unfinished uploads under %s: %s", self.remote, exc)

    def _adopt_committed_orphans(self) -> None:
        """List checkpoints that were committed (renamed into place) but whose process died
        before the registry was updated; they are complete, so they count and can be evicted."""
        if not self.directory.is_dir():
            return
        known = {e.path for e in self.registry.entries}
        for folder in sorted(self.directory.iterdir()):
            if folder in known or not (folder / MANIFEST).is_file():
                continue
            try:
                info = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
                sha = manifest_checksum((folder / MANIFEST).read_bytes())
                metrics = {k: float(v) for k, v in (info.get("metrics") or {}).items()}
                orphan = CheckpointInfo(
                    name=folder.name, path=folder, epoch=int(info["epoch"]), step=int(info["step"]),
                    metrics=metrics, marked_best=info.get("is_best"), score=self.registry.policy.score(metrics),
                    sha256=sha, time=float(info.get("time") or 0.0),
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("unitrack: ignoring %s: not a readable checkpoint (%s)", folder, exc)
                continue
            log.warning("unitrack: adding %s to the registry: it was saved but never registered", folder.name)
            self.registry.add(orphan)
            self._emit(CHECKPOINT, self._event(orphan))

    # --- saving -------------------------------------------------------------------------------

    def save(
        self,
        model: Any,
        epoch: int,
        step: int,
        optimizer: Any = None,
        scheduler: Any = None,
        scaler: Any = None,
        is_best: bool | None = None,
        extra: Any = None,
        metrics: dict[str, Any] | None = None,
    ) -> CheckpointInfo | None:
        """Save a checkpoint; None when ``save_frequency`` skips it or a failed save is only warned about."""
        self.wait()
        frequency = self.settings.save_frequency
        if frequency and step % frequency and not is_best:
            return None
        from unitrack.checkpoint import state as training_state

        values = {key: _as_float(key, value) for key, value in (metrics or {}).items()}
        place = (self._new_name(epoch, step), self.directory, time.time())
        group = None
        if training_state.is_sharded(model):  # every rank saves its shards under rank 0's name and folder
            from unitrack.checkpoint import sharded

            group = sharded.checkpoint_group()
            place = sharded.agree(group, place)
        name, directory, stamp = place
        info = CheckpointInfo(
            name=name,
            path=directory / name,
            epoch=int(epoch),
            step=int(step),
            metrics=values,
            marked_best=None if is_best is None else bool(is_best),
            score=self.registry.policy.score(values),
            time=stamp,
            url=None if self.remote is None else str(self.remote.child(name)),
        )
        header = {"epoch": info.epoch, "step": info.step, "metrics": {k: encode_number(v) for k, v in values.items()},
                  "is_best": info.marked_best, "config_hash": self._config_hash, "time": info.time}
        if group is not None:
            return self._save_sharded(info, header, group, model, optimizer, scheduler, scaler, extra)
        try:
            captured = training_state.capture(model, optimizer, scheduler, scaler, header, extra)
            reuse = self.settings.async_save
            captured.model = training_state.to_cpu(captured.model, self._buffers["model"] if reuse else None)
            captured.tensors = training_state.to_cpu(captured.tensors, self._buffers["state"] if reuse else None)
        except Exception as exc:
            self._failed(CheckpointSaveError(f"could not capture checkpoint {info.name}: {exc}"), exc)
            return None
        return self._finish_save(info, partial(self._write, info, captured))

    def _finish_save(self, info: CheckpointInfo, write: Callable[[], None]) -> CheckpointInfo | None:
        """Run ``write`` now, or on the background thread with ``async_save`` (its error surfaces at the next call)."""
        if not self.settings.async_save:
            try:
                write()
            except Exception as exc:
                self._failed(exc, exc)
                return None
            return info
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unitrack-checkpoint")
        self._pending = self._executor.submit(write)
        return info

    def _save_sharded(
        self, info: CheckpointInfo, header: dict[str, Any], group: Any, model: Any, optimizer: Any, scheduler: Any,
        scaler: Any, extra: Any,
    ) -> CheckpointInfo | None:
        """Every rank: its shards through DCP (in the background with ``async_save``), then the manifest."""
        from unitrack.checkpoint import sharded

        if self.settings.encrypt:
            self._failed(CheckpointSaveError("sharded checkpoints cannot be encrypted"), None)
            return None
        try:
            job = sharded.start_save(
                info.path, group, header, model, optimizer, scheduler, scaler, extra, self.settings.async_save
            )
        except Exception as exc:
            self._failed(exc, exc)
            return None
        return self._finish_save(info, partial(self._commit_sharded, info, job))

    def _commit_sharded(self, info: CheckpointInfo, job: Any) -> None:
        info.sha256 = job.commit()
        if self.owner:
            self._register(info)

    def _new_name(self, epoch: int, step: int) -> str:
        base = f"epoch{int(epoch):04d}-step{int(step):08d}"
        name, counter = base, 1
        while name in self.registry.names() or (self.directory / name).exists():
            counter += 1
            name = f"{base}-{counter}"
        return name

    def _write(self, info: CheckpointInfo, captured: Any) -> None:
        from unitrack.checkpoint.storage import write_checkpoint

        key = load_key(self.settings.encryption_key_env) if self.settings.encrypt else None
        _, info.sha256 = write_checkpoint(info.path, captured, self.settings.compression, key)
        if self.remote is not None:
            from unitrack.checkpoint.s3 import upload_checkpoint

            try:  # staged on disk with its checksums, then uploaded with the manifest last
                upload_checkpoint(info.path, self.remote.child(info.name), s3_client(self.settings))
            finally:
                shutil.rmtree(info.path, ignore_errors=True)
        self._register(info)

    def _register(self, info: CheckpointInfo) -> None:
        self.registry.add(info)  # committed before anything is evicted
        self._emit(CHECKPOINT, self._event(info))
        self._apply_retention()

    def _event(self, info: CheckpointInfo) -> CheckpointData:
        aliases = ["latest"] + (["best"] if info.is_best else [])
        data = CheckpointData(
            name=info.name,
            path=str(info.path),
            epoch=info.epoch,
            step=info.step,
            metrics={k: encode_number(v) for k, v in info.metrics.items()},
            is_best=info.is_best,
            aliases=aliases,
            sha256=info.sha256,
        )
        if info.url:
            data["url"] = info.url
        if info.is_best and self.settings.register_model:
            data["register"] = self.registration()
        return data

    def registration(self, name: str | None = None, aliases: Any = None) -> dict[str, Any]:
        """What a backend registers a checkpoint as: ``checkpointing.register_model`` and its aliases by default."""
        aliases = self.settings.register_aliases if aliases is None else aliases
        return {"name": name or self.settings.register_model, "aliases": [str(a) for a in aliases]}

    def register(self, ref: Any, name: str | None, aliases: Any) -> CheckpointInfo:
        """Journal a ``register_model`` event for the checkpoint ``ref`` names (the backends register it)."""
        info = ref if isinstance(ref, CheckpointInfo) else (self.best() if ref == "best" else self.last() if ref == "last" else self.registry.find(str(ref)))
        if info is None:
            raise CheckpointNotFoundError(f"no checkpoint {ref!r} to register")
        if not (name or self.settings.register_model):
            raise ValueError("register_model needs a model name (or checkpointing.register_model in the config)")
        self._emit(REGISTER_MODEL, {**self.registration(name, aliases), "checkpoint": self._event(info)})
        return info

    def rewind(self) -> CheckpointInfo | None:
        """Resume: the last (or, ``resume_from: best``, best) checkpoint that verifies, marked as resumed
        from (retention never evicts it) with a ``rewind`` record (metric steps after it are superseded)."""
        from unitrack.checkpoint.locations import verify_info

        settings = self.settings
        for candidate in self.candidates(settings.resume_from):
            problems = verify_info(candidate, settings.encryption_key_env, settings)
            if not problems:
                with self.registry.lock:
                    self.registry.resumed_from.append(candidate.name)
                    self.registry.save()
                self._emit(REWIND, RewindData(step=candidate.step, checkpoint=candidate.name))
                return candidate
            log.warning("unitrack: not resuming from checkpoint %s: %s", candidate.name, "; ".join(problems))
        log.warning("unitrack: run %s has no intact checkpoint; it continues without rewinding", self.run_id)
        return None

    def _apply_retention(self) -> None:
        for victim in self.registry.to_evict():
            self.registry.remove(victim.name)
            delete_info(victim, self.settings)
            self._emit(CHECKPOINT_REMOVED, CheckpointRemovedData(name=victim.name))

    def _failed(self, error: BaseException, cause: BaseException | None) -> None:
        if not isinstance(error, CheckpointSaveError):
            error = CheckpointSaveError(f"checkpoint save failed: {type(error).__name__}: {error}")
        if self.settings.on_error == "raise":
            raise error from cause
        warnings.warn(f"unitrack: {error} (earlier checkpoints are intact; training goes on)", RuntimeWarning, stacklevel=3)
        return None

    def wait(self) -> None:
        """Wait for a pending background save; its failure is raised or warned about here."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            pending.result()
        except Exception as exc:
            self._failed(exc, exc)

    def close(self, timeout: float | None = None) -> None:
        """Wait (up to ``timeout``) for a pending save at the end of the run; a failure is logged, never raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.result(timeout)
            except FutureTimeout:
                log.warning("unitrack: checkpoint save still running after %.0f s; it commits only if it finishes", timeout)
            except Exception as exc:
                log.error("unitrack: the last checkpoint save failed: %s", exc)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self._buffers = {"model": {}, "state": {}}

    # --- reading ------------------------------------------------------------------------------

    def kept(self) -> list[CheckpointInfo]:
        """The kept checkpoints, oldest first (after a pending save has finished)."""
        self.wait()
        with self.registry.lock:
            return list(self.registry.entries)

    def best(self) -> CheckpointInfo | None:
        self.wait()
        return self.registry.best()

    def last(self) -> CheckpointInfo | None:
        self.wait()
        return self.registry.last()

    def load(
        self, ref: Any, model: Any, optimizer: Any = None, scheduler: Any = None, scaler: Any = None
    ) -> tuple[int, int]:
        """Restore a checkpoint into the given objects; ``ref`` is a CheckpointInfo, a path, a name, "best" or "last"."""
        self.wait()
        from unitrack.checkpoint.state import is_sharded, restore

        if is_sharded(model):  # every rank loads its own shards, resharded to this world size
            from unitrack.checkpoint.sharded import load_sharded

            return load_sharded(partial(self.plan, ref), model, optimizer, scheduler, scaler)
        state, _ = self.read(ref)  # a sharded checkpoint is read whole here, for a plain model
        return restore(state, model, optimizer, scheduler, scaler)

    def read(self, ref: Any) -> tuple[Any, CheckpointInfo | None]:
        """The verified content of a checkpoint; "best" and "last" fall back past damaged ones."""
        from unitrack.checkpoint.storage import read_checkpoint

        key_env = self.settings.encryption_key_env
        choices, fallback = self.targets(ref)
        for info, folder in choices:
            try:
                if info is not None:
                    return read_info(info, key_env, self.settings), info
                return read_checkpoint(folder, None, key_env), None
            except (CheckpointCorruptError, OSError) as exc:
                if not fallback:
                    raise
                warnings.warn(f"unitrack: skipping checkpoint {folder.name}: {exc}", RuntimeWarning, stacklevel=4)
        raise CheckpointNotFoundError(self.none_to_load(ref, tried=len(choices)))

    def targets(self, ref: Any) -> tuple[list[tuple[CheckpointInfo | None, Path]], bool]:
        """The checkpoints ``ref`` may mean, in the order to try them (with their registry entry when
        listed), and whether to fall back past a damaged one ("best" and "last" do; a named one raises)."""
        if isinstance(ref, str) and ref in ("best", "last"):
            return [(c, c.path) for c in self.candidates(ref)], True
        info = ref if isinstance(ref, CheckpointInfo) else self._by_name_or_path(ref)
        return [(info, info.path if info is not None else _folder_of(Path(os.fspath(ref))))], False

    def plan(self, ref: Any) -> tuple[list[tuple[str, str | None]], bool, str]:
        """For a load that every rank of a sharded model makes together (rank 0 asks): the folders
        ``ref`` means with their manifest checksums, whether to fall back, what to say if none is intact."""
        choices, fallback = self.targets(ref)
        found = [(str(folder), info.sha256 if info else None) for info, folder in choices]
        return found, fallback, self.none_to_load(ref, tried=len(found))

    def none_to_load(self, ref: Any, tried: int) -> str:
        """Why nothing could be loaded as ``ref``: none saved, none marked best, or every one damaged."""
        with self.registry.lock:
            saved = len(self.registry.entries)
        if tried:
            return f"no intact checkpoint to load as {ref!r} in {self.registry.path}: all {tried} failed verification"
        if saved == 0:
            return f"no checkpoint has been saved in {self.registry.path} yet"
        return (
            f"none of the {saved} checkpoint(s) in {self.registry.path} is marked best: pass is_best=True to "
            "save_checkpoint, or set checkpointing.monitor (e.g. val_loss) to have the best one chosen; "
            "or load 'last'"
        )

    def candidates(self, which: str) -> list[CheckpointInfo]:
        """Checkpoints to try for "best" (the best, then newest first) or "last" (newest first)."""
        with self.registry.lock:
            return fallback_order(list(reversed(self.registry.entries)), self.registry.best(), which)

    def _by_name_or_path(self, ref: Any) -> CheckpointInfo | None:
        if isinstance(ref, str):
            found = self.registry.find(ref)
            if found is not None:
                return found
        folder = _folder_of(Path(os.fspath(ref)))
        if not folder.exists():
            raise CheckpointNotFoundError(f"no checkpoint {str(ref)!r}: neither a name in the registry nor a folder")
        with self.registry.lock:
            return next((e for e in self.registry.entries if e.path == folder.absolute()), None)


def _folder_of(path: Path) -> Path:
    return path.parent if path.is_file() else path


def _as_float(key: str, value: Any) -> float:
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        raise TypeError(f"checkpoint metric {key!r} must be a number, got {type(value).__name__}") from None



"""Sharded checkpoints: every rank saves its shards with torch's Distributed Checkpoint (DCP), and
the manifest adds what DCP lacks, a checksum per file.

A model whose parameters are DTensors (FSDP2's ``fully_shard``, tensor parallelism) has no whole
state dict on any rank, and gathering one would cost a rank the memory of the whole model. So a
``save_checkpoint`` called on every rank saves it the way torch does: DCP writes each rank's
shards (``__<rank>_<n>.distcp``) and rank 0 the index (``.metadata``), and reshards on load, so
the checkpoint loads into any number of ranks, or into a plain model in one process. DCP checks
no content hash (a truncated shard loads if the index names it): each rank hashes the files it
wrote, rank 0 gathers the digests over the process group (the ranks need no shared filesystem to
write) and writes ``state.json`` and the manifest last, as for whole checkpoints. One folder,
registered once by rank 0, with retention, ``best`` and ``verify`` as usual.

Only tensors go through DCP, which would pickle anything else: the rest of the training state
(optimizer hyperparameters, scheduler, scaler, ``extra``, each rank's RNG) is JSON in
``state.json`` (``treecodec``). DCP's own ``.metadata`` is a pickle by DCP's design; it is read
only after its checksum matched the manifest, whose own checksum the registry holds.

The collective steps (agreeing on the name, DCP's planning, gathering digests, verifying before a
load) run on a gloo group of their own, so a background save never interleaves with training's
collectives. Every rank reaches the same outcome: an error on one rank is raised on all of them.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from unitrack.checkpoint import treecodec
from unitrack.checkpoint.errors import CheckpointCorruptError, CheckpointError, CheckpointNotFoundError, CheckpointSaveError
from unitrack.checkpoint.state import TrainingState, capture, restore
from unitrack.checkpoint.storage import (
    SHARDED_LAYOUT,
    STATE_JSON,
    TEMP_PREFIX,
    check_files,
    check_free_space,
    commit_folder,
    file_entry,
    read_manifest,
    write_state_json,
)

DCP_METADATA = ".metadata"
MODEL_PREFIX = "model/"
_group_cache: list[Any] = []  # [(the world group it was made for, the checkpoint group)]


def checkpoint_group() -> Any:
    """The gloo group of the checkpoint collectives, made on first use (every rank saves together)."""
    if not dist.is_initialized():
        raise CheckpointError("a sharded model is saved and loaded by every rank together: initialise torch.distributed")
    world = dist.group.WORLD
    if not _group_cache or _group_cache[0][0] is not world:
        _group_cache[:] = [(world, dist.new_group(backend="gloo"))]
    return _group_cache[0][1]


def agree(group: Any, proposal: Any) -> Any:
    """Rank 0's ``proposal`` (any picklable value), on every rank."""
    box = [proposal]
    dist.broadcast_object_list(box, group=group, group_src=0)
    return box[0]


def _everyone(group: Any, value: Any) -> list[Any]:
    values: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(values, value, group=group)
    return values


class _ModelState:
    """A sharded model seen through torch's distributed state-dict API (FQN keys, shards kept)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def state_dict(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.model)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(self.model, state)


class _OptimizerState:
    """An optimizer's state keyed by parameter names (not positions), so it reshards and loads into a plain model."""

    def __init__(self, model: Any, optimizer: Any) -> None:
        self.model = model
        self.optimizer = optimizer

    def state_dict(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(self.model, self.optimizer)  # creates a fresh optimizer's state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(self.model, self.optimizer, state)


def by_names(model: Any, optimizer: Any) -> tuple[_ModelState, _OptimizerState | None]:
    """The model and optimizer as torch's distributed state-dict API sees them (a sharded checkpoint's form)."""
    return _ModelState(model), None if optimizer is None else _OptimizerState(model, optimizer)


# --- saving ---------------------------------------------------------------------------------------


class ShardedSave:
    """One sharded save on this rank: DCP writing (maybe in the background), then :meth:`commit`."""

    def __init__(self, target: Path, group: Any, content: dict[str, Any], writing: Future[Any] | None) -> None:
        self.target = target
        self.temp = target.parent / f"{TEMP_PREFIX}{target.name}-sharded"  # the same on every rank
        self.group = group
        self.content = content
        self.writing = writing

    def commit(self) -> str:
        """Wait for DCP, hash this rank's files, and let rank 0 write the manifest and rename the
        folder into place; return the manifest's SHA-256 (on every rank)."""
        rank = dist.get_rank(self.group)
        digests: dict[str, Any] = {}
        error = None
        try:
            if self.writing is not None:
                self.writing.result()
            digests = {p.name: file_entry(p) for p in _written_by(self.temp, rank)}
        except Exception as exc:
            error = f"rank {rank}: {type(exc).__name__}: {exc}"
        gathered: list[Any] | None = [None] * dist.get_world_size(self.group) if rank == 0 else None
        dist.gather_object((digests, self.content.pop("rng"), error), gathered, group=self.group, group_dst=0)
        outcome = agree(self.group, self._write_manifest(gathered) if gathered is not None else None)
        if outcome[0] != "ok":
            shutil.rmtree(self.temp, ignore_errors=True)
            raise CheckpointSaveError(f"sharded checkpoint {self.target.name} was not saved: {outcome[1]}")
        if rank != 0 and self.temp.is_dir():  # node-local disks: this node's shards under the same name
            _rename_unless_there(self.temp, self.target)
        return str(outcome[1])

    def _write_manifest(self, gathered: list[Any]) -> tuple[str, str]:
        """On rank 0: ``state.json`` with every rank's RNG, then the manifest, then the rename."""
        try:
            errors = [error for _, _, error in gathered if error]
            if errors:
                raise CheckpointSaveError("; ".join(errors))
            files: dict[str, Any] = {}
            for digests, _, _ in gathered:
                files.update(digests)
            content = {**self.content, "rng_by_rank": {str(rank): rng for rank, (_, rng, _) in enumerate(gathered)}}
            files[STATE_JSON] = write_state_json(self.temp, content)
            _, sha = commit_folder(self.temp, self.target, files, content, layout=SHARDED_LAYOUT)
            return ("ok", sha)
        except Exception as exc:
            return ("error", f"{type(exc).__name__}: {exc}")


def start_save(
    target: Path,
    group: Any,
    header: dict[str, Any],
    model: Any,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    extra: Any,
    background: bool,
) -> ShardedSave:
    """Capture this rank's shards and hand them to DCP (``dcp.async_save`` copies them first when
    ``background``); raises on every rank when any rank could not capture its state."""
    import torch.distributed.checkpoint as dcp

    rank, world = dist.get_rank(group), dist.get_world_size(group)
    info = {**header, "world_size": world}
    error = None
    try:
        captured = capture(*by_names(model, optimizer), scheduler, scaler, info, extra, rng_prefix=f"rng/{rank}")
        captured.info["layout"] = SHARDED_LAYOUT
        tensors = {**{MODEL_PREFIX + k: v for k, v in captured.model.items()}, **captured.tensors}
        target.parent.mkdir(parents=True, exist_ok=True)
        check_free_space(target.parent, sum(_local(t).numel() * t.element_size() for t in tensors.values()))
    except Exception as exc:
        error = f"rank {rank}: {type(exc).__name__}: {exc}"
    errors = [e for e in _everyone(group, error) if e]
    if errors:
        raise CheckpointSaveError(f"could not capture sharded checkpoint {target.name}: {'; '.join(errors)}")
    job = ShardedSave(target, group, captured.info, None)
    shutil.rmtree(job.temp, ignore_errors=True)  # left by a save that was killed
    dist.barrier(group=group)
    if background:
        pending = dcp.async_save(tensors, checkpoint_id=str(job.temp), process_group=group)
        job.writing = pending if isinstance(pending, Future) else pending.upload_completion
    else:
        job.writing = _done(dcp.save(tensors, checkpoint_id=str(job.temp), process_group=group))
    return job


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _written_by(folder: Path, rank: int) -> list[Path]:
    """The files DCP wrote for ``rank``: its shards (``__<rank>_*``) and, on rank 0, the index."""
    prefix = f"__{rank}_"
    return sorted(p for p in folder.iterdir() if p.name.startswith(prefix) or (rank == 0 and p.name == DCP_METADATA))


def _rename_unless_there(temp: Path, target: Path) -> None:
    try:
        os.rename(temp, target)
    except OSError:
        if not target.is_dir():
            raise


# --- loading --------------------------------------------------------------------------------------


LoadPlan = tuple[list[tuple[str, str | None]], bool, str]
"""The folders to try in order (with their manifest's checksum when known), whether to fall back
past a damaged one, and what to say when none is intact."""


def load_sharded(
    plan: Callable[[], LoadPlan], model: Any, optimizer: Any = None, scheduler: Any = None, scaler: Any = None
) -> tuple[int, int]:
    """Every rank together: rank 0 makes the ``plan`` (which checkpoint folders the reference means),
    the ranks verify the files between them, and DCP loads each rank's shards (resharding to this
    world size); returns (epoch, step)."""
    group = checkpoint_group()
    made: Any = None
    if dist.get_rank(group) == 0:
        try:
            made = ("ok", *plan())
        except Exception as exc:
            made = ("error", exc)
    made = agree(group, made)
    if made[0] != "ok":
        raise made[1]
    _, choices, fallback, none_left = made
    for folder_text, expected in choices:
        folder = Path(folder_text)
        problems = verify_together(folder, expected, group)
        if not problems:
            return _load_verified(folder, group, model, optimizer, scheduler, scaler)
        if not fallback:
            raise CheckpointCorruptError(str(folder), problems)
        warnings.warn(f"unitrack: skipping checkpoint {folder.name}: {'; '.join(problems)}", RuntimeWarning, stacklevel=4)
    raise CheckpointNotFoundError(none_left)


def verify_together(folder: Path, expected: str | None, group: Any) -> list[str]:
    """Every problem of a sharded checkpoint, each rank hashing its share of the files."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    try:
        manifest = read_manifest(folder, expected)
        if manifest.get("layout") != SHARDED_LAYOUT:
            raise CheckpointError(
                f"checkpoint {folder} holds a whole model: load it into the model before fully_shard(), "
                "or into a plain model"
            )
        mine = check_files(folder, manifest, sorted(manifest["files"])[rank::world])
    except CheckpointCorruptError as exc:
        mine = exc.problems
    except CheckpointError as exc:
        mine = [f"error: {exc}"]
    found = [problem for problems in _everyone(group, mine) for problem in problems]
    fatal = [p for p in found if p.startswith("error: ")]
    if fatal:
        raise CheckpointError(fatal[0][len("error: ") :])
    return list(dict.fromkeys(found))


def _load_verified(folder: Path, group: Any, model: Any, optimizer: Any, scheduler: Any, scaler: Any) -> tuple[int, int]:
    import torch.distributed.checkpoint as dcp

    rank, world = dist.get_rank(group), dist.get_world_size(group)
    content = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    same_world = content.get("world_size") == world
    if optimizer is not None and "optimizer" not in content:
        raise ValueError("the checkpoint holds no optimizer state")
    targets = {MODEL_PREFIX + k: v for k, v in _ModelState(model).state_dict().items()}
    if optimizer is not None:
        treecodec.encode(_OptimizerState(model, optimizer).state_dict(), "optimizer", targets)
    wanted = ("scheduler/", "scaler/", "extra/", *((f"rng/{rank}/",) if same_world else ()))
    targets.update(_empty_tensors(folder, lambda key: key not in targets and key.startswith(wanted)))
    dcp.load(targets, checkpoint_id=str(folder), process_group=group)
    info = {**content, "rng": content["rng_by_rank"][str(rank)]} if same_world else content
    state = TrainingState(_model_part(targets), targets, info)
    return restore(state, model, optimizer, scheduler, scaler, restore_rng=same_world)


def read_whole(folder: Path, manifest: dict[str, Any]) -> TrainingState:
    """A sharded checkpoint as one whole state in this process (every shard verified first)."""
    import torch.distributed.checkpoint as dcp

    problems = check_files(folder, manifest, sorted(manifest["files"]))
    if problems:
        raise CheckpointCorruptError(str(folder), problems)
    content = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    tensors = _empty_tensors(folder, lambda key: not key.startswith("rng/"))
    with _quiet_single_process():
        dcp.load(tensors, checkpoint_id=str(folder), no_dist=True)
    return TrainingState(_model_part(tensors), tensors, content)


def _empty_tensors(folder: Path, keep: Any) -> dict[str, torch.Tensor]:
    """Whole, empty tensors for the keys of a verified checkpoint that ``keep`` accepts, for DCP to fill."""
    from torch.distributed.checkpoint import FileSystemReader, TensorStorageMetadata

    metadata = FileSystemReader(str(folder)).read_metadata()  # a pickle: read after its checksum matched
    return {
        key: torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
        for key, meta in metadata.state_dict_metadata.items()
        if isinstance(meta, TensorStorageMetadata) and keep(key)
    }


def _model_part(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}


@contextmanager
def _quiet_single_process() -> Iterator[None]:
    """DCP warns that it assumes one process when told so (``no_dist``): that is what we asked for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*assuming the intent is to load in a single process.*")
        yield

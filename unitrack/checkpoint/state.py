"""What a checkpoint holds, taken from and given back to the live training objects.

Model weights become one tensor map (tied / shared tensors stored once, the other names kept as
aliases); optimizer, scheduler, AMP scaler, RNG states and user ``extra`` become JSON plus a
second tensor map. Nothing here pickles.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from typing import Any

import torch

from unitrack.checkpoint import treecodec
from unitrack.checkpoint.storage import SHARDED_LAYOUT

STATE_FORMAT = 1


@dataclass
class TrainingState:
    """One checkpoint's content, in memory."""

    model: dict[str, torch.Tensor]
    tensors: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)

    def weights(self) -> dict[str, torch.Tensor]:
        """The model's state dict as saved, tied names included (they share one tensor)."""
        weights = dict(self.model)
        for alias, target in (self.info.get("aliases") or {}).items():
            weights[alias] = weights[target]
        return weights

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for m in (self.model, self.tensors) for t in m.values())


def _model_tensors(model: Any) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The model's state dict with every shared tensor once, and ``{alias: stored name}``."""
    state = model.state_dict() if hasattr(model, "state_dict") else dict(model)
    unique: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    for name, tensor in state.items():
        tensor = tensor.detach()
        key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
               tensor.stride(), tensor.dtype) if tensor.numel() and not is_dtensor(tensor) else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        unique[name] = tensor
    return unique, aliases


def is_dtensor(tensor: torch.Tensor) -> bool:
    """A DTensor has no storage of its own; a sharded save keeps every name (DCP stores shards per name)."""
    tensor_module = sys.modules.get("torch.distributed.tensor")
    return tensor_module is not None and isinstance(tensor, tensor_module.DTensor)


def is_sharded(model: Any) -> bool:
    """True for a model with DTensor parameters (FSDP2, tensor parallel): every rank saves its shards."""
    return hasattr(model, "parameters") and any(is_dtensor(p) for p in model.parameters())


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def capture(
    model: Any,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    info: dict[str, Any],
    extra: Any,
    rng_prefix: str = "rng",
) -> TrainingState:
    """Read the training state now (on the caller's thread); tensors still live where they were.

    ``rng_prefix`` names the RNG tensors (a sharded save gives each rank its own)."""
    weights, aliases = _model_tensors(model)
    tensors: dict[str, torch.Tensor] = {}
    content: dict[str, Any] = {"format": STATE_FORMAT, **info, "aliases": aliases}
    for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None:
            content[key] = treecodec.encode(obj.state_dict(), key, tensors)
    content["rng"] = treecodec.encode(rng_state(), rng_prefix, tensors)
    if extra is not None:
        content["extra"] = treecodec.encode(extra, "extra", tensors)
    return TrainingState(weights, tensors, content)


def to_cpu(tensors: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors a writer may read later: copies into ``buffers`` (reused across
    saves, pinned for CUDA sources) when given, else the tensors themselves where already fit."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if buffers is None:
            out[name] = tensor.to("cpu").contiguous()
            continue
        buffer = buffers.get(name)
        if buffer is None or buffer.shape != tensor.shape or buffer.dtype != tensor.dtype:
            pin = tensor.device.type == "cuda"
            buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=pin)
            buffers[name] = buffer
        buffer.copy_(tensor, non_blocking=tensor.device.type == "cuda")
        out[name] = buffer
    if buffers is not None and any(t.device.type == "cuda" for t in tensors.values()):
        torch.cuda.synchronize()
    return out


def restore(
    state: TrainingState, model: Any, optimizer: Any = None, scheduler: Any = None, scaler: Any = None,
    restore_rng: bool = True,
) -> tuple[int, int]:
    """Give ``state`` back to the training objects; return ``(epoch, step)``.

    A sharded checkpoint's state (``layout: dcp``) goes through torch's distributed state-dict API,
    by parameter names: into the sharded model, or into a plain one when it was read whole."""
    info = state.info
    if info.get("layout") == SHARDED_LAYOUT:
        from unitrack.checkpoint.sharded import by_names

        model, optimizer = by_names(model, optimizer)
    if hasattr(model, "load_state_dict"):
        model.load_state_dict(state.weights())
    for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is None:
            continue
        if key not in info:
            raise ValueError(f"the checkpoint holds no {key} state")
        obj.load_state_dict(treecodec.decode(info[key], state.tensors))
    if restore_rng and "rng" in info:
        set_rng(treecodec.decode(info["rng"], state.tensors))
    return int(info["epoch"]), int(info["step"])


def set_rng(rng: dict[str, Any]) -> None:
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(rng["torch"].clone())
    if "numpy" in rng:
        import numpy as np

        np.random.set_state(rng["numpy"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.clone() for t in rng["cuda"]])

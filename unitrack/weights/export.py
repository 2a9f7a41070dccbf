"""A model's whole state dict as one ``.safetensors`` file, from any weights a reference names.

What ``unitrack export-weights`` writes: the weights of a run's checkpoint or snapshot, a sharded
(DCP) checkpoint gathered into whole tensors, a file, an MLflow artifact — for evaluation,
serving or a hub, where nothing of unitrack is installed. The file is written beside the target
and renamed into place, so a reader never sees half of it.
"""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path

from unitrack.weights.arrays import BFLOAT16
from unitrack.weights.sources import WeightSource


def export_safetensors(source: WeightSource, target: Path) -> int:
    """Write every tensor of ``source`` to ``target`` (atomically); return how many there were."""
    import numpy as np
    import torch

    from unitrack.checkpoint.tensorfile import write_tensor_file

    tensors: dict[str, torch.Tensor] = {}
    with warnings.catch_warnings():  # memory-mapped arrays are read-only; the writer only reads them
        warnings.filterwarnings("ignore", message=".*not writable.*")
        for name, meta in source.tensors().items():
            tensor = torch.from_numpy(np.ascontiguousarray(source.array(name)))
            tensors[name] = tensor.view(torch.bfloat16) if meta.dtype == BFLOAT16 else tensor
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write_tensor_file(temp, tensors, {"format": "pt"})
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return len(tensors)

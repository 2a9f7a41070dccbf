"""Nested training state (optimizer, scheduler, scaler, RNG) as JSON plus named tensors: no pickle.

``encode`` walks dicts, lists and tuples; tensors and NumPy arrays are moved to a tensor map
under a path-like key and replaced by a reference; numbers, strings, booleans and None stay
JSON. Whatever else is met (a lambda in a scheduler...) is an error that names its place,
because silently dropping state would make a resume inexact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from unitrack.checkpoint.errors import CheckpointError
from unitrack.nonfinite import encode_number

_TENSOR, _NDARRAY, _TUPLE, _ITEMS, _FLOAT = "__tensor__", "__ndarray__", "__tuple__", "__items__", "__float__"


def encode(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """The JSON form of ``value``; its tensors are added to ``tensors`` under keys starting with ``prefix``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {_FLOAT: encode_number(value)}
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach()
        return {_TENSOR: prefix}
    kind = type(value).__module__.split(".")[0]
    if kind == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            tensors[prefix] = torch.from_numpy(np.ascontiguousarray(value))
            return {_NDARRAY: prefix}
        return encode(value.item(), prefix, tensors)
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode(v, f"{prefix}/{k}", tensors) for k, v in value.items()}
        return {_ITEMS: [[encode(k, f"{prefix}/k{i}", tensors), encode(v, f"{prefix}/{k}", tensors)]
                         for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, tuple):
        return {_TUPLE: [encode(v, f"{prefix}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, f"{prefix}/{i}", tensors) for i, v in enumerate(value)]
    raise CheckpointError(
        f"cannot store {prefix!r}: a {type(value).__name__} is not a tensor, number, string or container "
        "(checkpoints hold no pickles)"
    )


def decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, inner), = value.items()
        if key == _TENSOR:
            return tensors[inner]
        if key == _NDARRAY:
            return tensors[inner].numpy()
        if key == _TUPLE:
            return tuple(decode(v, tensors) for v in inner)
        if key == _ITEMS:
            return {decode(k, tensors): decode(v, tensors) for k, v in inner}
        if key == _FLOAT:
            return float(inner)
    return {k: decode(v, tensors) for k, v in value.items()}

"""Any framework's weights as ``{name: numpy array}``: the one form snapshots store.

PyTorch modules and state dicts, JAX / Flax pytrees (nested mappings and sequences of arrays),
dicts of NumPy arrays and Keras models all become flat, ordered mappings of host arrays.
NumPy has no bfloat16, so such tensors travel as their raw 16-bit patterns (``uint16``) with the
dtype name kept beside them; :func:`as_float` turns either form back into numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BFLOAT16 = "bfloat16"


@dataclass(frozen=True)
class HostTensor:
    """One tensor on the host: its raw bytes as an array, and the dtype name it really has."""

    array: np.ndarray
    dtype: str
    version: tuple[int, int] | None = None  # (data pointer, in-place version) of a torch tensor


def as_float(array: np.ndarray, dtype: str) -> np.ndarray:
    """The values of ``array`` as a float array (bfloat16 bit patterns widened to float32)."""
    if dtype == BFLOAT16:
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


def host_tensors(weights: Any) -> dict[str, HostTensor]:
    """Flatten ``weights`` (a model, a state dict, a pytree, a Keras model) into host tensors."""
    if _is_keras_model(weights):  # first: on Keras' torch backend a model is also a torch module
        return {_keras_name(v, i): _from_array(v) for i, v in enumerate(weights.weights)}
    if hasattr(weights, "state_dict") and callable(weights.state_dict):
        return _from_mapping(weights.state_dict())
    if isinstance(weights, Mapping):
        return _from_mapping(weights)
    raise TypeError(
        f"cannot take weights from a {type(weights).__name__}: pass a torch module or state dict, "
        "a mapping (pytree) of arrays, or a Keras model"
    )


def _is_keras_model(obj: Any) -> bool:
    return any(c.__module__.startswith(("keras", "tf_keras")) for c in type(obj).__mro__) and hasattr(obj, "weights")


def _keras_name(variable: Any, index: int) -> str:
    return str(getattr(variable, "path", None) or getattr(variable, "name", None) or f"weight_{index}")


def _from_mapping(tree: Mapping[str, Any]) -> dict[str, HostTensor]:
    made: set[str] = set()
    if any(type(v).__module__.startswith("torch") or isinstance(v, tuple) for v in tree.values()):
        from unitrack.weights.compressed import effective_tensors  # quantized, pruned, sparse

        tree, made = effective_tensors(tree)
    return {name: _from_array(leaf, cacheable=name not in made) for name, leaf in _leaves(tree, "")}


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{prefix}.{index}" if prefix else str(index))
    elif node is not None and hasattr(node, "shape"):
        yield prefix, node
    # other leaves (step counters, strings) are not weights


def _from_array(value: Any, cacheable: bool = True) -> HostTensor:
    if type(value).__module__.startswith("torch"):
        return _from_torch(value, cacheable)
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # Keras / TF variables
        value = value.numpy()
    array = np.asarray(value)  # JAX arrays copy to the host here
    if array.dtype.name == BFLOAT16:  # ml_dtypes' bfloat16 (JAX)
        return HostTensor(np.ascontiguousarray(array).view(np.uint16), BFLOAT16)
    return HostTensor(np.ascontiguousarray(array), array.dtype.name)


def _from_torch(tensor: Any, cacheable: bool = True) -> HostTensor:
    """A torch tensor's bytes on the host; ``version`` only for tensors a cache may key by address
    (a temporary, such as a dequantized weight, can reuse a freed one's address)."""
    import torch

    data = tensor.detach()
    version = (data.data_ptr(), data._version) if cacheable and data.device.type == "cpu" else None
    if data.device.type != "cpu":
        data = data.cpu()
    data = data.contiguous()
    if data.dtype == torch.bfloat16:
        return HostTensor(data.view(torch.int16).numpy().view(np.uint16), BFLOAT16, version)
    return HostTensor(data.numpy(), str(data.dtype).removeprefix("torch."), version)

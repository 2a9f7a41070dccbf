"""Quantized, pruned and sparse weights as the values a layer really computes with.

A state dict of a compressed model does not hold its weights plainly:
- ``torch.nn.utils.prune`` keeps ``weight_orig`` and ``weight_mask``; the layer uses their product;
- ``torch.ao.quantization`` keeps quantized tensors (int8 values with a scale and zero point, per
  tensor or per output channel), for dynamic and static Linear layers packed in
  ``_packed_params._packed_params`` as ``(weight, bias)``;
- hand-quantized checkpoints keep an int8 / float8 ``weight`` beside a ``weight_scale``;
- sparse tensors hold indices and values.

:func:`effective_tensors` turns such a (flat) state dict into plain tensors named as the layer's
parameters (``fc.weight``), dequantized to float32, plus ``<name>.scale`` / ``<name>.zero_point``
so that a change of quantization parameters is reported per layer too. Every tensor it makes is
a fresh temporary: callers must not cache anything by its address (a later temporary can reuse
it), which is why the names it returns are listed as ``made``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PACKED = "._packed_params._packed_params"
SCALE_SUFFIXES = ("_scale", ".scale")
_FLOAT8 = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")


def effective_tensors(state: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """``(tensors, made)``: the state dict with compressed entries replaced; ``made`` names the temporaries."""
    import torch

    out: dict[str, Any] = {}
    made: set[str] = set()

    def put(name: str, tensor: Any) -> None:
        out[name] = tensor
        made.add(name)

    for name, value in state.items():
        if name.endswith(PACKED) and isinstance(value, (tuple, list)):
            layer = name[: -len(PACKED)]
            for part, tensor in zip(("weight", "bias"), value, strict=False):
                if isinstance(tensor, torch.Tensor):
                    _put_plain(put, f"{layer}.{part}", tensor)
        elif name.endswith("_mask") and f"{name[: -len('_mask')]}_orig" in state:
            continue  # folded into the effective weight below
        elif name.endswith("_orig") and f"{name[: -len('_orig')]}_mask" in state:
            base = name[: -len("_orig")]
            put(base, value.detach() * state[f"{base}_mask"])
        elif isinstance(value, torch.Tensor) and (value.is_quantized or value.layout != torch.strided):
            _put_plain(put, name, value)
        elif isinstance(value, torch.Tensor) and (scale := _scaled(name, value, state)) is not None:
            put(name, value.detach().to(torch.float32) * _broadcastable(scale, value))
        elif isinstance(value, torch.Tensor) and str(value.dtype).removeprefix("torch.") in _FLOAT8:
            put(name, value.detach().to(torch.float32))  # NumPy has no float8
        else:
            out[name] = value
    return out, made


def _put_plain(put: Any, name: str, tensor: Any) -> None:
    """A quantized tensor as its float values plus its quantization parameters; a sparse one dense."""
    import torch

    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    if not tensor.is_quantized:
        put(name, tensor.detach())
        return
    put(name, tensor.dequantize())
    if tensor.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        put(f"{name}.scale", torch.tensor([tensor.q_scale()], dtype=torch.float64))
        put(f"{name}.zero_point", torch.tensor([tensor.q_zero_point()], dtype=torch.int64))
    else:
        put(f"{name}.scale", tensor.q_per_channel_scales().to(torch.float64))
        put(f"{name}.zero_point", tensor.q_per_channel_zero_points().to(torch.int64))


def _scaled(name: str, value: Any, state: Mapping[str, Any]) -> Any:
    """The scale stored beside an int8 / float8 tensor (``w`` + ``w_scale`` or ``w.scale``), if any."""
    dtype = str(value.dtype).removeprefix("torch.")
    if dtype != "int8" and dtype not in _FLOAT8:
        return None
    for suffix in SCALE_SUFFIXES:
        scale = state.get(name + suffix)
        if scale is not None and hasattr(scale, "shape"):
            return scale
    return None


def _broadcastable(scale: Any, value: Any) -> Any:
    """A per-tensor or per-output-channel scale shaped to multiply ``value``."""
    import torch

    scale = scale.detach().to(torch.float32)
    if scale.numel() in (1, 0) or scale.dim() == value.dim():
        return scale.reshape(()) if scale.numel() == 1 else scale
    if scale.numel() == value.shape[0]:
        return scale.reshape(value.shape[0], *([1] * (value.dim() - 1)))
    raise ValueError(f"scale of shape {tuple(scale.shape)} does not fit a tensor of shape {tuple(value.shape)}")

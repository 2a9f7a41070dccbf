"""Automatic parameter extraction for ``watch()``: what the model and its training set-up are.

Everything returned is plain JSON data: the architecture (``repr`` and a per-module table of
parameter counts, dtypes and devices), the optimizer and each param group's settings, the
scheduler, the loss function and the data loader.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from unitrack.nonfinite import encode_number

_SCALARS = (bool, int, float, str, type(None))


def json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of settings values: tuples become lists, tensors numbers, others text."""
    if isinstance(value, float):
        return encode_number(value)
    if isinstance(value, _SCALARS):
        return value
    if depth < 4 and isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    if depth < 4 and isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    numel = getattr(value, "numel", None)
    if numel is not None and callable(numel):
        return value.item() if numel() == 1 else f"tensor{tuple(value.shape)}"
    return repr(value)


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def describe_model(model: Any) -> dict[str, Any]:
    """Architecture and parameter counts of an ``nn.Module``."""
    modules = []
    dtypes: Counter[str] = Counter()
    devices: set[str] = set()
    for name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        total = sum(p.numel() for p in module.parameters())
        modules.append(
            {
                "name": name or "(root)",
                "type": type(module).__name__,
                "parameters": sum(p.numel() for _, p in own),
                "trainable": sum(p.numel() for _, p in own if p.requires_grad),
                "total_parameters": total,
                "shapes": {pname: list(p.shape) for pname, p in own},
                "dtypes": sorted({str(p.dtype).replace("torch.", "") for _, p in own}),
            }
        )
    for parameter in model.parameters():
        dtypes[str(parameter.dtype).replace("torch.", "")] += parameter.numel()
        devices.add(str(parameter.device))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "class": _type_name(model),
        "repr": repr(model),
        "parameters": {"total": total, "trainable": trainable, "frozen": total - trainable},
        "buffers": sum(b.numel() for b in model.buffers()),
        "dtypes": dict(dtypes),
        "devices": sorted(devices),
        "modules": modules,
    }


def describe_optimizer(optimizer: Any) -> dict[str, Any]:
    groups = []
    for group in optimizer.param_groups:
        settings = {k: json_safe(v) for k, v in group.items() if k != "params"}
        settings["num_parameters"] = sum(p.numel() for p in group["params"])
        groups.append(settings)
    return {"class": _type_name(optimizer), "defaults": json_safe(dict(optimizer.defaults)), "param_groups": groups}


def describe_scheduler(scheduler: Any) -> dict[str, Any]:
    try:
        state = scheduler.state_dict()
    except Exception:
        state = {}
    settings = {k: json_safe(v) for k, v in state.items() if not k.startswith("_") and k != "optimizer"}
    return {"class": _type_name(scheduler), "settings": settings}


def describe_loss(loss_fn: Any) -> dict[str, Any]:
    if not hasattr(loss_fn, "__dict__") or (callable(loss_fn) and not hasattr(loss_fn, "forward")):
        name = getattr(loss_fn, "__qualname__", None) or repr(loss_fn)
        return {"class": f"{getattr(loss_fn, '__module__', '')}.{name}", "settings": {}}
    settings = {
        k: json_safe(v)
        for k, v in vars(loss_fn).items()
        if not k.startswith("_") and k != "training" and (isinstance(v, _SCALARS) or hasattr(v, "numel"))
    }
    return {"class": _type_name(loss_fn), "settings": settings}


def describe_dataloader(loader: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"class": _type_name(loader)}
    for attribute in ("batch_size", "num_workers", "drop_last", "pin_memory"):
        if hasattr(loader, attribute):
            info[attribute] = json_safe(getattr(loader, attribute))
    sampler = getattr(loader, "sampler", None)
    if sampler is not None:
        info["sampler"] = type(sampler).__name__
        info["shuffle"] = type(sampler).__name__ == "RandomSampler"
    dataset = getattr(loader, "dataset", None)
    if dataset is not None:
        info["dataset"] = type(dataset).__name__
        try:
            info["dataset_size"] = len(dataset)
        except TypeError:
            pass
    try:
        info["batches_per_epoch"] = len(loader)
    except TypeError:
        pass
    return info


def setup_params(description: dict[str, Any]) -> dict[str, Any]:
    """The handful of set-up facts worth a column in ``ls`` and a row in ``compare``."""
    params: dict[str, Any] = {}
    model = description.get("model")
    if model:
        params["model/class"] = model["class"]
        params["model/parameters"] = model["parameters"]["total"]
        params["model/trainable_parameters"] = model["parameters"]["trainable"]
    optimizer = description.get("optimizer")
    if optimizer:
        params["optimizer/class"] = optimizer["class"]
        first = optimizer["param_groups"][0] if optimizer["param_groups"] else {}
        for key, value in first.items():
            if key != "num_parameters" and isinstance(value, _SCALARS):
                params[f"optimizer/{key}"] = value
            elif key == "betas" and isinstance(value, list):
                params["optimizer/betas"] = value
    for section in ("scheduler", "loss"):
        info = description.get(section)
        if info:
            params[f"{section}/class"] = info["class"]
            for key, value in info["settings"].items():
                if isinstance(value, _SCALARS):
                    params[f"{section}/{key}"] = value
    data = description.get("data")
    if data:
        for key in ("batch_size", "num_workers", "dataset_size", "batches_per_epoch", "shuffle"):
            if key in data:
                params[f"data/{key}"] = data[key]
    return params

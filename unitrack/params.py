"""Hyperparameters from whatever users keep them in, as one flat, JSON-ready, redacted mapping.

Accepted: a mapping, a dataclass, an ``argparse.Namespace``, a pydantic model, an OmegaConf /
Hydra ``DictConfig``. Nested sections are flattened with '/' (``optimizer/lr``), as metrics are.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

from unitrack.nonfinite import encode_number
from unitrack.redact import redact_value

SEPARATOR = "/"


def as_mapping(obj: Any) -> Mapping[str, Any]:
    """The key/value view of a supported hyperparameter container."""
    if isinstance(obj, Mapping) and type(obj).__module__.split(".")[0] != "omegaconf":
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    module = type(obj).__module__.split(".")[0]
    if module == "omegaconf":
        from omegaconf import OmegaConf

        return OmegaConf.to_container(obj, resolve=True)
    if hasattr(obj, "model_dump") and callable(obj.model_dump):  # pydantic v2
        return obj.model_dump(mode="json")
    if type(obj).__name__ == "Namespace" and hasattr(obj, "__dict__"):  # argparse
        return vars(obj)
    raise TypeError(
        f"hyperparameters must be a mapping, a dataclass, an argparse.Namespace, a pydantic model "
        f"or an OmegaConf config, not {type(obj).__name__}"
    )


def param_value(value: Any) -> Any:
    """A JSON-ready value: numbers, text, booleans, None, lists of those; anything else as text."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return encode_number(value)
    if isinstance(value, (list, tuple)):
        return [param_value(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return param_value(item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return param_value(dataclasses.asdict(value))
    return str(value)


def hydra_overrides() -> list[str] | None:
    """The command-line overrides of the running Hydra app (``lr=0.1``...), or None outside one."""
    if "hydra" not in sys.modules:  # never import Hydra just to ask
        return None
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None


def _redacted_override(override: str) -> str:
    key, _, value = override.partition("=")
    return f"{key}={redact_value(key.lstrip('+~'), value)}"


def flatten_params(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested sections with '/', convert values, and redact secrets.

    A Hydra config at the top level also records the app's overrides as ``hydra/overrides``.
    """
    flat: dict[str, Any] = {}
    if not prefix and type(obj).__module__.split(".")[0] == "omegaconf":
        overrides = hydra_overrides()
        if overrides is not None:
            flat[f"hydra{SEPARATOR}overrides"] = [_redacted_override(o) for o in overrides]
    for key, value in as_mapping(obj).items():
        if not isinstance(key, str):
            key = str(key)
        if not key:
            raise ValueError(f"hyperparameter names must not be empty (under {prefix!r})")
        name = f"{prefix}{SEPARATOR}{key}" if prefix else key
        is_section = isinstance(value, Mapping) or (dataclasses.is_dataclass(value) and not isinstance(value, type))
        if is_section or type(value).__module__.split(".")[0] == "omegaconf":
            flat.update(flatten_params(value, name))
        else:
            flat[name] = redact_value(name, param_value(value))
    return flat

"""Command-line values turned into Python without pydantic, for the plain types unitrack's commands use.

typer (0.29) coerces every parameter of a command through a pydantic ``TypeAdapter``, built
even for an option left unset: importing pydantic and building the adapters cost a read
command about 0.15 s of its 0.25 s budget. ``str``, ``bool``, ``int`` (with ``min`` / ``max``),
``Path`` and lists of them are converted here as click would; anything else still goes to typer's
own coercion. When typer's internals differ from what this expects, nothing is changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

_SIMPLE = (str, bool, int, Path)
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def install() -> None:
    """Route the plain types' coercion through :func:`_fast_runtime_param` (idempotent)."""
    try:
        from typer import _coercion, core
    except ImportError:
        return
    original = getattr(core, "build_runtime_param", None)
    base = getattr(_coercion, "RuntimeParam", None)
    if original is None or base is None or getattr(original, "_unitrack_fast", False):
        return

    @dataclass(frozen=True)
    class PlainRuntimeParam(base):  # type: ignore[misc,valid-type]
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, (list, tuple)):
                return [_convert(self.annotation_leaf(), v, self.parameter_info, param, ctx) for v in value]
            return _convert(self.annotation_leaf(), value, self.parameter_info, param, ctx)

        def annotation_leaf(self) -> Any:
            return get_args(self.annotation)[0] if get_origin(self.annotation) is list else self.annotation

    def build(descriptor: Any) -> Any:
        info = descriptor.parameter_info
        leaf = descriptor.annotation
        if get_origin(leaf) is list and len(get_args(leaf)) == 1:
            leaf = get_args(leaf)[0]
        plain = (
            leaf in _SIMPLE
            and descriptor.file_annotation is None
            and getattr(info, "parser", None) is None
            and getattr(info, "click_type", None) is None
            and not descriptor.is_choice
        )
        if not plain:
            return original(descriptor)
        return PlainRuntimeParam(parameter_info=info, annotation=descriptor.annotation)

    build._unitrack_fast = True  # type: ignore[attr-defined]
    core.build_runtime_param = build


def _convert(kind: type, value: Any, info: Any, param: Any, ctx: Any) -> Any:
    from typer._click.exceptions import BadParameter

    if kind is str:
        return value if isinstance(value, str) else str(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise BadParameter(f"{value!r} is not a valid boolean.", ctx=ctx, param=param)
    if kind is int:
        try:
            number = value if isinstance(value, int) else int(str(value).strip())
        except ValueError:
            raise BadParameter(f"{value!r} is not a valid integer.", ctx=ctx, param=param) from None
        low, high = getattr(info, "min", None), getattr(info, "max", None)
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = " and ".join(b for b in (f"x>={low}" if low is not None else "", f"x<={high}" if high is not None else "") if b)
            raise BadParameter(f"{number} is not in the range {bounds}.", ctx=ctx, param=param)
        return number
    from typer._param_types import coerce_cli_path

    return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)

"""The configuration reference of docs/configuration.md, generated from the pydantic schema.

    python -m unitrack.config_reference --write docs/configuration.md

The reference sits between two markers in the doc; a test fails when it is stale, so the doc
cannot drift from the code.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from unitrack.config import Config

START, END = "<!-- config-reference -->", "<!-- /config-reference -->"


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    text = re.sub(r"typing\.|unitrack\.config\.", "", text)
    text = re.sub(r"^Optional\[(.*)\]$", r"\1 | None", text).replace("NoneType", "None")
    return text.replace("|", "\\|")  # a bare pipe would split the markdown table cell


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        # a factory that is not an empty container reads the environment: its meaning says how
        return f"`{value!r}`" if isinstance(value, (dict, list)) else "see meaning"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{field.default!r}`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _rows(annotation, f"{key}.")
            continue
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{_type_name(annotation)}` | {_default(field)} | {description} |")
    return rows


def reference_markdown() -> str:
    """Every key of :class:`Config`, dotted, with its type, default and description."""
    header = ["| key | type | default | meaning |", "|---|---|---|---|"]
    return "\n".join(header + _rows(Config, ""))


def render_into(text: str) -> str:
    """``text`` with the block between the markers replaced by the current reference."""
    block = f"{START}\n{reference_markdown()}\n{END}"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"the document has no {START} ... {END} block")
    return pattern.sub(lambda _: block, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, required=True, help="the markdown file to update in place")
    args = parser.parse_args()
    args.write.write_text(render_into(args.write.read_text()))


if __name__ == "__main__":
    main()

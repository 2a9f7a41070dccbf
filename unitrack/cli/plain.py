"""Plain-text tables for the commands that print many rows (``ls`` of a thousand runs).

rich lays a table out cell by cell, measuring and wrapping each one: about a millisecond a row.
These tables are columns padded to their widest cell, coloured with ANSI codes only on a terminal,
so listing costs what formatting the strings costs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36", "bold red": "1;31"}


def use_color() -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set or the terminal is dumb."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def paint(text: str, style: str | None, color: bool) -> str:
    code = _CODES.get(style or "")
    return f"\x1b[{code}m{text}\x1b[0m" if color and code and text else text


def table(header: Sequence[str], rows: Sequence[Sequence[str]], styles: Sequence[Sequence[str | None]] | None = None) -> str:
    """``rows`` under a bold ``header``, two spaces between columns; ``styles[r][c]`` colours a cell."""
    color = use_color()
    widths = [max([len(header[c]), *(len(row[c]) for row in rows)]) for c in range(len(header))]
    last = len(header) - 1

    def line(cells: Sequence[str], cell_styles: Sequence[str | None]) -> str:
        parts = []
        for c, cell in enumerate(cells):
            padding = "" if c == last else " " * (widths[c] - len(cell))
            parts.append(paint(cell, cell_styles[c], color) + padding)
        return "  ".join(parts).rstrip()

    lines = [line(header, ["bold"] * len(header))]
    for r, row in enumerate(rows):
        lines.append(line(row, styles[r] if styles else [None] * len(row)))
    return "\n".join(lines)

"""What every command shares: the store option, error handling, JSON output, formatting."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from unitrack.nonfinite import encode_number, json_safe
from unitrack.store.layout import DEFAULT_STORE_DIR, STORE_ENV

# a str, not a Path: typer coerces a Path through pydantic, which costs ~0.15 s of start-up
StoreOption = Annotated[
    str | None,
    typer.Option("--store", envvar=STORE_ENV, help=f"The local store (default: ${STORE_ENV} or ./{DEFAULT_STORE_DIR})."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]

STATUS_STYLES = {
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "interrupted": "yellow",
    "pruned": "magenta",
    "crashed": "bold red",
}


def open_store(store: str | Path | None, must_exist: bool = True) -> Any:
    """:func:`unitrack.store.runs.open_store`, imported when a command runs: ``--help`` stays fast."""
    from unitrack.store.runs import open_store as open_run_store

    return open_run_store(store, must_exist)


def import_numpy_one_blas_thread() -> None:
    """Import numpy with one OpenBLAS thread unless the user chose a number: the reading commands do
    no linear algebra, and OpenBLAS would start a thread per core that spins for ~0.1 s of CPU at
    import (a fifth of what ``export`` costs; more wall clock on a busy machine). The environment is
    left as it was, so that nothing this process starts inherits the setting."""
    if "numpy" in sys.modules or os.environ.get("OPENBLAS_NUM_THREADS"):
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn expected errors into one clear line on stderr and exit status 1 (no traceback)."""
    try:
        yield
    except typer.Exit:
        raise
    except BrokenPipeError:  # `unitrack ls | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:
        if os.environ.get("UNITRACK_DEBUG"):
            raise
        from unitrack.errors import UnitrackError

        expected = isinstance(exc, (UnitrackError, OSError, ValueError, LookupError))
        message = str(exc) if expected else f"internal error: {type(exc).__name__}: {exc} (UNITRACK_DEBUG=1 shows more)"
        typer.echo(f"error: {message.splitlines()[0] if message else type(exc).__name__}", err=True)
        for extra in message.splitlines()[1:]:
            typer.echo(f"  {extra.strip()}", err=True)
        raise typer.Exit(1) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(json_safe(data), indent=2, sort_keys=False, allow_nan=False, default=str) + "\n")


def console() -> Any:
    """A rich console; when output is piped, wide enough that tables do not fold into columns of letters."""
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out = Console(highlight=False, soft_wrap=False, width=max(out.width, 160))
    return out


def fmt_time(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(encode_number(value))
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "-" if value is None else str(value)


def fmt_status(status: str) -> str:
    style = STATUS_STYLES.get(status, "")
    return f"[{style}]{status}[/{style}]" if style else status

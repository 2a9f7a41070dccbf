"""``ls``, ``show``, ``export`` and ``reindex``: finding runs and reading them back."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.cli.common import console, fmt_duration, fmt_status, fmt_time, fmt_value, print_json
from unitrack.failure import failure_line
from unitrack.goals import headline_metrics

if TYPE_CHECKING:
    from unitrack.store.runs import RunStore

_TABLE_METRICS = 3


def find_runs(
    store: RunStore,
    tags: list[str] | None = None,
    git: str | None = None,
    statuses: list[str] | None = None,
    filter_text: str | None = None,
    experiment: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The ``ls --json`` entries of the runs matching every criterion, newest first."""
    from unitrack.reading import listings

    return listings(filter_text, store=store, experiment=experiment, status=statuses, limit=limit, tags=tags, git=git)


def print_runs(runs: list[dict[str, Any]], store: RunStore) -> None:
    from unitrack.cli.common import STATUS_STYLES
    from unitrack.cli.plain import paint, table, use_color

    if not runs:
        sys.stdout.write(f"no runs in {store.root}\n")
        return
    rows, styles = [], []
    color = use_color()
    for run in runs:
        metrics = "  ".join(f"{k}={fmt_value(run['metrics'][k])}" for k in headline_metrics(run["metrics"]))
        if len(run["metrics"]) > _TABLE_METRICS:
            metrics += f"  (+{len(run['metrics']) - _TABLE_METRICS})"
        rows.append(
            [
                run["run_id"],
                run["name"] or "-",
                run["status"],
                fmt_time(run["start_time"]),
                fmt_duration(run["duration"]),
                (run["git_commit"] or "-")[:8],
                metrics or "-",
                _message_cell(run, color),
            ]
        )
        styles.append([None, None, STATUS_STYLES.get(run["status"]), None, None, None, None, None])
    header = ("run", "name", "status", "started", "took", "git", "metrics", "message")
    sys.stdout.write(table(header, rows, styles) + "\n")
    sys.stdout.write(paint(f"{len(runs)} run(s) in {store.root}", "dim", color) + "\n")


def _message_cell(run: dict[str, Any], color: bool) -> str:
    """The run's message, and for a failed run the one line of why (``ValueError: ...``), in red
    (the last column: its colour codes pad nothing)."""
    from unitrack.cli.plain import paint

    message = " ".join((run["message"] or "")[:60].split())
    if not run.get("error"):
        return message
    return f"{message}  {paint(run['error'][:80], 'red', color)}".strip()


def run_details(store: RunStore, ref: str, with_history: bool = False) -> dict[str, Any]:
    """Everything recorded about a run — local, or read from MLflow, a W&B run directory or a
    TensorBoard log dir — with the metric and system history when ``with_history``."""
    from unitrack.reading import open_run

    return open_run(ref, store).to_dict(with_history)


def show_run(store: RunStore, ref: str, as_json: bool) -> None:
    data = run_details(store, ref)
    if as_json:
        print_json(data)
        return
    from rich.markup import escape
    from rich.table import Table

    out = console()
    info = data["info"]
    git = info.get("git") or {}
    out.print(f"[bold]{data['name']}[/bold]  run {data['run_id']}  {fmt_status(data['status'])}")
    facts = [
        ("experiment", data["experiment"]),
        ("message", data["message"]),
        ("started", fmt_time(data["start_time"])),
        ("ended", fmt_time(data["end_time"])),
        ("duration", fmt_duration(data["duration"])),
        ("git", f"{git.get('commit', '-')} ({git.get('branch')}{', dirty' if git.get('dirty') else ''})" if git else "-"),
        ("command", " ".join(info.get("command") or []) or "-"),
        ("host", " ".join(str(part) for part in (info.get("host"), _pid(info.get("pid"))) if part) or None),
        ("config hash", info.get("config_hash")),
        ("peak memory", f"{info['peak_rss_mb']:.0f} MB" if info.get("peak_rss_mb") else None),
        ("tags", ", ".join(f"{k}={v}" if v else k for k, v in data["tags"].items()) or None),
        ("folder", data["path"]),
    ]
    grid = Table.grid(padding=(0, 2))
    for key, value in facts:
        if value not in (None, "", "-"):  # what a backend's run does not know is left out, not printed as None
            grid.add_row(f"[dim]{key}[/dim]", escape(str(value)))
    out.print(grid)
    _print_failure(out, data.get("error"), data["status"])
    _print_mapping_table(out, "params", {k: fmt_value(v) for k, v in sorted(data["params"].items())})
    if data["metric_summary"]:
        table = Table(title="metrics", title_justify="left", box=None, header_style="bold")
        for column in ("metric", "last", "step", "min", "max", "points"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for key, s in sorted(data["metric_summary"].items()):
            table.add_row(
                key, fmt_value(s.get("last")), str(s.get("step", "-")), fmt_value(s.get("min")),
                fmt_value(s.get("max")), str(s.get("count", 0)),
            )  # fmt: skip
        out.print(table)
    if data["system"]:
        table = Table(title="system", title_justify="left", box=None, header_style="bold")
        for column in ("series", "mean", "max", "samples"):
            table.add_column(column, justify="left" if column == "series" else "right")
        for key, s in sorted(data["system"].items()):
            table.add_row(key, fmt_value(s.get("mean")), fmt_value(s.get("max")), str(s.get("count", 0)))
        out.print(table)
    if data["artifacts"]:
        sizes = {a["name"]: f"{a['size']} bytes" if a.get("size") is not None else "" for a in data["artifacts"]}
        _print_mapping_table(out, "artifacts", sizes)
    if data["delivery"]:
        from unitrack.store.history import delivery_gap  # the journal's reader: not for ls

        rows = {}
        for name, state in data["delivery"].items():
            if state["in_sync"]:
                rows[name] = "[green]in sync[/green]"
            else:
                rows[name] = f"[yellow]{delivery_gap(state)}[/yellow] {state.get('start_error') or state.get('last_error') or ''}".strip()
        _print_mapping_table(out, "backends", rows)


def _pid(pid: Any) -> str | None:
    return f"pid {pid}" if pid else None


def _print_failure(out: Any, error: dict[str, Any] | None, status: str, lines: int = 30) -> None:
    """Why a failed run failed: its exception in one line, where it was raised, and the traceback's end."""
    from rich.markup import escape

    if not error:
        return
    out.print(f"[bold red]{escape(status)}:[/bold red] {escape(failure_line(error, width=400) or '')}")
    if error.get("where"):
        out.print(f"[dim]at {escape(error['where'])}[/dim]")
    tail = str(error.get("traceback") or "").rstrip().splitlines()[-lines:]
    if tail:
        out.print(escape("\n".join(tail)), style="dim", highlight=False)


def _print_mapping_table(out: Any, title: str, rows: dict[str, str]) -> None:
    from rich.table import Table

    if not rows:
        return
    table = Table(title=title, title_justify="left", box=None, show_header=False)
    table.add_column("key", style="dim")
    table.add_column("value", overflow="fold")
    for key, value in rows.items():
        table.add_row(key, value)
    out.print(table)


def export_run(store: RunStore, ref: str, as_csv: bool, out_file: Path | None) -> None:
    from unitrack.cli.export import export_json, write_csv
    from unitrack.reading import open_run

    view = open_run(ref, store)
    handle = open(out_file, "w", encoding="utf-8", newline="") if out_file else sys.stdout  # noqa: SIM115 - stdout is not ours to close
    try:
        if as_csv:
            write_csv(view, handle)
        else:
            handle.write(export_json(view) + "\n")
    finally:
        if out_file:
            handle.close()

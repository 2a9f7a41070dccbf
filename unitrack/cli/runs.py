"""``ls``, ``show``, ``export`` and ``reindex``: finding runs and reading them back."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

from unitrack.cli.common import console, fmt_duration, fmt_status, fmt_time, fmt_value, print_json
from unitrack.store.runs import RunStore

_TABLE_METRICS = 3


def headline_metrics(metrics: dict[str, Any], count: int = _TABLE_METRICS) -> list[str]:
    """The metrics a person looks at first: validation accuracy and loss, then other acc / loss."""

    def rank(key: str) -> tuple[int, str]:
        lowered = key.lower()
        score = ("acc" in lowered or "loss" in lowered) + ("val" in lowered or "test" in lowered)
        return (-score, key)

    return sorted(metrics, key=rank)[:count]


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
    from unitrack.reading import run_summary, runs

    views = runs(filter_text, store=store, experiment=experiment, status=statuses, limit=limit, tags=tags, git=git)
    return [run_summary(view) for view in views]


def print_runs(runs: list[dict[str, Any]], store: RunStore) -> None:
    from rich.table import Table

    out = console()
    if not runs:
        out.print(f"no runs in {store.root}")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run", "name", "status", "started", "took", "git", "metrics", "message"):
        wraps = column in ("metrics", "message")
        table.add_column(column, overflow="fold" if wraps else "ellipsis", no_wrap=not wraps)
    for run in runs:
        metrics = "  ".join(f"{k}={fmt_value(run['metrics'][k])}" for k in headline_metrics(run["metrics"]))
        if len(run["metrics"]) > _TABLE_METRICS:
            metrics += f"  (+{len(run['metrics']) - _TABLE_METRICS})"
        table.add_row(
            run["run_id"],
            run["name"] or "-",
            fmt_status(run["status"]),
            fmt_time(run["start_time"]),
            fmt_duration(run["duration"]),
            (run["git_commit"] or "-")[:8],
            metrics or "-",
            (run["message"] or "")[:60],
        )
    out.print(table)
    out.print(f"[dim]{len(runs)} run(s) in {store.root}[/dim]")


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
        ("host", f"{info.get('host')} pid {info.get('pid')}"),
        ("config hash", info.get("config_hash")),
        ("peak memory", f"{info['peak_rss_mb']:.0f} MB" if info.get("peak_rss_mb") else "-"),
        ("tags", ", ".join(f"{k}={v}" if v else k for k, v in data["tags"].items()) or "-"),
        ("folder", data["path"]),
    ]
    grid = Table.grid(padding=(0, 2))
    for key, value in facts:
        grid.add_row(f"[dim]{key}[/dim]", str(value) if value is not None else "-")
    out.print(grid)
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
        _print_mapping_table(out, "artifacts", {a["name"]: f"{a['size']} bytes" for a in data["artifacts"]})
    if data["delivery"]:
        rows = {}
        for name, state in data["delivery"].items():
            if state["in_sync"]:
                rows[name] = "[green]in sync[/green]"
            else:
                why = state.get("start_error") or state.get("last_error") or ""
                rows[name] = f"[yellow]owes {state['owed']} event(s)[/yellow] {why}".strip()
        _print_mapping_table(out, "backends", rows)


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
    data = run_details(store, ref, with_history=True)
    handle = open(out_file, "w", encoding="utf-8", newline="") if out_file else sys.stdout  # noqa: SIM115 - stdout is not ours to close
    try:
        if as_csv:
            writer = csv.writer(handle)
            writer.writerow(["metric", "step", "time", "value"])
            for key, points in data["metric_history"].items():
                for point in points:
                    writer.writerow([key, point["step"], f"{point['time']:.6f}", point["value"]])
        elif out_file:
            import json

            from unitrack.cli.common import json_safe

            json.dump(json_safe(data), handle, indent=2, allow_nan=False, default=str)
            handle.write("\n")
        else:
            print_json(data)
    finally:
        if out_file:
            handle.close()

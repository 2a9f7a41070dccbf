"""``ls --group-by git``: runs per git commit (tvault's registry-per-commit view)."""

from __future__ import annotations

from typing import Any

from unitrack.cli.common import console, fmt_status, fmt_value
from unitrack.cli.runs import headline_metrics
from unitrack.store.runs import RunStore

GROUP_KEYS = {"git": "git_commit", "experiment": "experiment", "status": "status"}


def group_runs(runs: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """``[{"key": commit, "runs": [...]}]``, the group with the newest run first."""
    if by not in GROUP_KEYS:
        raise ValueError(f"--group-by {by!r}: choose one of {', '.join(GROUP_KEYS)}")
    field = GROUP_KEYS[by]
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:  # already newest first
        groups.setdefault(str(run.get(field) or "(none)"), []).append(run)
    return [{"key": key, "runs": members} for key, members in groups.items()]


def print_groups(groups: list[dict[str, Any]], store: RunStore) -> None:
    from rich.markup import escape

    out = console()
    if not groups:
        out.print(f"no runs in {store.root}")
        return
    for group in groups:
        out.print(f"[bold]{escape(group['key'][:12])}[/bold]  {len(group['runs'])} run(s)")
        for index, run in enumerate(group["runs"]):
            metrics = "  ".join(f"{k}={fmt_value(run['metrics'][k])}" for k in headline_metrics(run["metrics"]))
            message = escape((run["message"] or "")[:60])
            out.print(f"  {index}  {run['run_id']}  {fmt_status(run['status'])}  {escape(metrics) or '-'}  {message}")

"""``ls --group-by git|experiment|status|study``: runs per git commit, experiment, status or sweep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unitrack.cli.common import console, fmt_status, fmt_value
from unitrack.goals import headline_metrics
from unitrack.store.runs import RunStore

STUDY_TAG = "optuna.study"
GROUP_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "git": lambda run: run.get("git_commit"),
    "experiment": lambda run: run.get("experiment"),
    "status": lambda run: run.get("status"),
    "study": lambda run: (run.get("tags") or {}).get(STUDY_TAG),
}
_STUDY_FIELDS = ("direction", "sampler", "pruner", "best_trial", "best_value", "best_run_id")


def group_runs(runs: list[dict[str, Any]], by: str, store: RunStore | None = None) -> list[dict[str, Any]]:
    """``[{"key": commit, "runs": [...]}]``, the group with the newest run first.

    Groups of a study also carry the study's record (direction, sampler, pruner, best trial) when
    ``store`` holds one.
    """
    if by not in GROUP_KEYS:
        raise ValueError(f"--group-by {by!r}: choose one of {', '.join(GROUP_KEYS)}")
    key_of = GROUP_KEYS[by]
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:  # already newest first
        groups.setdefault(str(key_of(run) or "(none)"), []).append(run)
    result: list[dict[str, Any]] = [{"key": key, "runs": members} for key, members in groups.items()]
    if by == "study" and store is not None:
        from unitrack.integrations.studies import read_study

        for group in result:
            record = read_study(group["key"], store.root) if group["key"] != "(none)" else None
            if record:
                group["study"] = {name: record.get(name) for name in _STUDY_FIELDS}
    return result


def print_groups(groups: list[dict[str, Any]], store: RunStore) -> None:
    from rich.markup import escape

    out = console()
    if not groups:
        out.print(f"no runs in {store.root}")
        return
    for group in groups:
        study = group.get("study")
        best = ""
        if study and study.get("best_trial") is not None:
            best = f"  {study['direction']}, best trial {study['best_trial']} = {fmt_value(study['best_value'])}"
        key = group["key"] if study else group["key"][:12]
        out.print(f"[bold]{escape(key)}[/bold]  {len(group['runs'])} run(s){escape(best)}")
        for index, run in enumerate(group["runs"]):
            metrics = "  ".join(f"{k}={fmt_value(run['metrics'][k])}" for k in headline_metrics(run["metrics"]))
            message = escape((run["message"] or "")[:60])
            out.print(f"  {index}  {run['run_id']}  {fmt_status(run['status'])}  {escape(metrics) or '-'}  {message}")

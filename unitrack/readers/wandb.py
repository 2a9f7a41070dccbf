"""``wandb:PATH``: a W&B run directory (``wandb/offline-run-...``, or its ``.wandb`` file) as a ``RunView``.

The records are read by W&B's own reader, ``wandb leet inspect --json``, so no W&B account and no
network are needed. Each point gets back the step the loop logged (``unitrack/step``; W&B's own
step is only the row's number), and the points a resumed run superseded (``unitrack/rewinds`` in
the summary) are dropped, as the local store drops them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from unitrack.backends.wandb import ERROR_KEY, REWINDS_KEY, SEQ_KEY, STEP_KEY
from unitrack.errors import RunNotFoundError
from unitrack.failure import failure_from_line
from unitrack.readers import RunView, register_reader
from unitrack.readers.summary import make_record, split_system
from unitrack.store.history import drop_superseded

STATES = {"finished": "completed", "failed": "failed", "crashed": "crashed", "killed": "interrupted", "running": "running"}


def _wandb_command() -> str:
    beside = Path(sys.executable).parent / "wandb"
    found = str(beside) if beside.exists() else shutil.which("wandb")
    if not found:
        raise RunNotFoundError("reading a W&B run needs the wandb command: pip install 'unitrack[wandb]'")
    return found


def _inspect(path: Path, *options: str) -> str:
    result = subprocess.run(
        [_wandb_command(), "leet", "inspect", "--json", *options, str(path)], capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RunNotFoundError(f"wandb leet inspect could not read {path}: {result.stderr.strip()[:300]}")
    return result.stdout


def _time(text: str | None) -> float | None:
    """Seconds since the epoch of W&B's RFC 3339 times (nanoseconds and 'Z' included)."""
    if not text:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def read_wandb_run(ref: str) -> RunView:
    path = Path(ref.partition(":")[2]).expanduser()
    if not path.exists():
        raise RunNotFoundError(f"no W&B run directory {path}")
    records = [json.loads(line) for line in _inspect(path).splitlines() if line.strip()]
    summary = json.loads(_inspect(path, "--summary"))
    history: dict[str, list[dict[str, Any]]] = {}
    config: dict[str, Any] = {}
    run: dict[str, Any] = {}
    for record in records:
        kind = record.get("type")
        if kind == "run":
            run = record["run"]
            config.update((run.get("config") or {}).get("update") or {})
        elif kind == "config":
            config.update((record["config"] or {}).get("update") or {})
        elif kind == "history":
            item = record["history"]["item"]
            step = int(item.get(STEP_KEY, record["history"].get("step", {}).get("num", item.get("_step", 0))))
            when = float(item.get("_timestamp", 0.0))
            for key, value in item.items():
                if not key.startswith("_") and key not in (SEQ_KEY, STEP_KEY) and isinstance(value, (int, float)):
                    history.setdefault(key, []).append({"step": step, "time": when, "value": value})
    run_summary = summary.get("summary") or {}
    history = drop_superseded(history, list(run_summary.get(REWINDS_KEY) or []))
    metrics, system = split_system(history)
    config.pop("_wandb", None)
    unitrack = config.pop("unitrack", None) or {}
    exit_code = summary.get("exit_code")
    status = STATES.get(str(summary.get("state")), "failed" if exit_code not in (None, 0) else "completed")
    if summary.get("summary", {}).get("unitrack/status"):
        status = summary["summary"]["unitrack/status"]
    tags = {}
    for label in run.get("tags") or summary.get("tags") or []:
        key, _, value = str(label).partition(":")
        tags[key] = value
    start = _time(run.get("start_time") or summary.get("start_time"))
    end = _time(summary.get("last_write"))
    record = make_record(
        run_id=str(run.get("run_id") or summary.get("run_id") or path.name),
        name=str(run.get("display_name") or summary.get("name") or path.name),
        experiment=str(run.get("project") or summary.get("project") or ""),
        status=status,
        history=metrics,
        params=config,
        tags=tags,
        message=summary.get("notes") or None,
        start_time=start,
        end_time=end,
        error=failure_from_line(run_summary.get(ERROR_KEY), run_summary.get(f"{ERROR_KEY}_traceback")),
        info={"source": "wandb", "unitrack_run_id": unitrack.get("run_id"), "git": unitrack.get("git") or {}, "summary": summary.get("summary")},
        path=str(path),
    )
    files = path / "files"
    artifacts = [
        {"name": p.relative_to(files).as_posix(), "size": p.stat().st_size, "sha256": None}
        for p in sorted(files.rglob("*")) if p.is_file()
    ] if files.exists() else []  # fmt: skip
    return RunView(record, metrics, system, artifacts, source="wandb", path=path)


register_reader("wandb", read_wandb_run)

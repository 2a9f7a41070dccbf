"""The ``run.json`` a run starts with: who started it, where, with what config.

Written once when the tracker opens a run (a resumed run merges it into what it had, see
:func:`unitrack.checkpoint.resume.resumed_run_json`); the git capture and the run's writer then
update it (git, status, end time, the backends' states) through :class:`unitrack.store.runfile.RunFile`.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from unitrack.checkpoint.resume import resumed_run_json, run_to_resume
from unitrack.commit_env import MESSAGE_ENV, command_from_env, run_id_from_env
from unitrack.config import Config, config_hash
from unitrack.redact import redact_argv
from unitrack.store.fsio import read_json
from unitrack.store.layout import RunPaths
from unitrack.store.runfile import RunFile
from unitrack.store.runs import RunStore

RUN_FORMAT = 1


def open_run_record(
    store: RunStore, experiment: str, name: str, config: Config, tags: dict[str, str], resume: str | None, start: float
) -> tuple[RunPaths, RunFile]:
    """A new run's folder (the id ``unitrack commit`` reserved, if any), or the folder of the run
    ``resume`` names; and its ``run.json``, this process's facts merged into what a resumed run had."""
    paths = store.new_run(run_id_from_env()) if resume is None else run_to_resume(store, resume, experiment)
    initial = initial_run_json(paths.run_id, name, experiment, config, tags, start)
    if resume is not None:
        initial = resumed_run_json(read_json(paths.run_json, {}) or {}, initial)
    return paths, RunFile(paths.run_json, initial)


def initial_run_json(
    run_id: str, name: str, experiment: str, config: Config, tags: dict[str, str], start: float
) -> dict[str, Any]:
    """The record of a run just started in this process (``unitrack commit`` may name its message and command)."""
    import psutil  # psutil's start-up cost is paid by a run, never by `import unitrack`

    return {
        "format": RUN_FORMAT,
        "run_id": run_id,
        "name": name,
        "experiment": experiment,
        "status": "running",
        "message": os.environ.get(MESSAGE_ENV) or config.description,
        "description": config.description,
        "tags": tags,
        "start_time": start,
        "end_time": None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start_time": psutil.Process(os.getpid()).create_time(),
        "command": command_from_env() or redact_argv(list(sys.argv)),
        "cwd": os.getcwd(),
        "config_hash": config_hash(config),
        "config": config.redacted(),
        "git": {},
        "backends": {},
    }

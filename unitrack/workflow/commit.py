"""``unitrack commit -m MSG -- CMD``: run a command as one tracked, versioned run.

The run id is chosen here and handed to the command in ``UNITRACK_RUN_ID`` (with the message,
tags, command line and store), so a script that uses unitrack writes into that very run. A
script that does not still gets a run: made here after it exits, with its git state and
environment. Either way this process adds what only it knows once the command has ended: the
exit code, the wall-clock duration, the command's output (``output.log``) and the CPU and
memory of the command's whole process tree, sampled while it ran.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from unitrack.commit_env import COMMAND_ENV, MESSAGE_ENV, RUN_ID_ENV, TAGS_ENV
from unitrack.events import PROCESS, UNNUMBERED, ArtifactEvent, Event, ProcessData, RecordEvent, StatusEvent, SystemEvent
from unitrack.hashing import SHA256, digest_path
from unitrack.names import new_run_id
from unitrack.store.fsio import read_json
from unitrack.store.runs import FINISHED_STATUSES, RunStore
from unitrack.workflow.journal_append import append_to_run

OUTPUT_LOG = "output.log"
_SAMPLE_INTERVAL_S = 1.0


@dataclass
class CommitResult:
    run_id: str
    exit_code: int
    joined: bool  # True when the command's own tracker wrote the run
    status: str


@dataclass
class _Usage:
    """CPU and memory of the command's process tree, sampled while it runs."""

    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    peak_rss_mb: float = 0.0


def _sample_tree(pid: int, usage: _Usage, done: threading.Event) -> None:
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    known: dict[int, Any] = {}
    while True:  # a first sample at once: a command shorter than the interval is sampled too
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        rss = cpu = 0.0
        for process in processes:
            process = known.setdefault(process.pid, process)
            try:
                rss += process.memory_info().rss / 2**20
                cpu += process.cpu_percent(None)
            except psutil.Error:
                continue
        usage.peak_rss_mb = max(usage.peak_rss_mb, rss)
        usage.samples.append((time.time(), {"command/rss_mb": rss, "command/cpu_percent": cpu}))
        if done.wait(_SAMPLE_INTERVAL_S):
            return


def _tee(source: IO[bytes], sinks: list[IO[bytes]], lock: threading.Lock) -> None:
    for chunk in iter(lambda: source.read1(1 << 16), b""):  # type: ignore[attr-defined]
        with lock:
            for sink in sinks:
                try:
                    sink.write(chunk)
                    sink.flush()
                except (OSError, ValueError):
                    continue  # a closed terminal never stops the command or its log


def _experiment_name(command: list[str]) -> str:
    script = next((part for part in command if part.endswith(".py")), command[0])
    name = Path(script).stem or "run"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def child_environment(run_id: str, store: RunStore, message: str | None, tags: dict[str, str], command: list[str]) -> dict[str, str]:
    from unitrack.config import STORE_ENV

    env = dict(os.environ)
    env[RUN_ID_ENV] = run_id
    env[STORE_ENV] = str(store.root)
    env[COMMAND_ENV] = json.dumps(command)
    env[TAGS_ENV] = json.dumps(tags)
    if message:
        env[MESSAGE_ENV] = message
    else:
        env.pop(MESSAGE_ENV, None)
    return env


def _final_status(recorded: str | None, exit_code: int) -> str:
    if exit_code < 0 and -exit_code in (signal.SIGINT, signal.SIGTERM):
        return "interrupted"
    if exit_code != 0:
        return recorded if recorded in ("failed", "interrupted") else "failed"
    return recorded if recorded in FINISHED_STATUSES and recorded != "crashed" else "completed"


def _create_run_for(
    run_id: str, store: RunStore, env: dict[str, str], experiment: str, cwd: Path | None, config: str | None
) -> None:
    """The run of a command that did not use unitrack: git state and environment, captured now.

    The tracker takes the run id, message, tags and command from the environment, as the
    script's own tracker would have, so both kinds of run are made the same way.
    """
    from unitrack.config import load_config
    from unitrack.tracker import ExperimentTracker

    settings = load_config(
        config,
        {"store_dir": str(store.root), "monitoring.enabled": False, "capture.handle_signals": False},
    )  # the backends of the user's config receive this run too; the command's usage was sampled here
    saved = dict(os.environ)
    previous_cwd = Path.cwd()
    os.environ.update(env)
    try:
        if cwd is not None:
            os.chdir(cwd)
        ExperimentTracker(experiment, settings).finish()
    finally:
        os.chdir(previous_cwd)
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class _Execution:
    """What watching the command produced: its exit code, times, usage and output log."""

    exit_code: int
    start: float
    end: float
    usage: _Usage
    log_path: Path


def _forward_sigterm(child: subprocess.Popen[bytes]) -> Any:
    """Pass a SIGTERM (a scheduler stopping the job) on to the command, so its end is still recorded."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))


def _execute(command: list[str], env: dict[str, str], cwd: Path | None) -> _Execution:
    """Run the command with its output both on this terminal and in a log file, sampling its usage."""
    log_file = tempfile.NamedTemporaryFile(prefix="unitrack-output-", suffix=".log", delete=False)  # noqa: SIM115 - kept open while the command runs
    usage, done, lock = _Usage(), threading.Event(), threading.Lock()
    start = time.time()
    try:
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        log_file.close()
        os.unlink(log_file.name)
        raise ValueError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None
    tees = [
        threading.Thread(target=_tee, args=(child.stdout, [sys.stdout.buffer, log_file], lock), daemon=True),
        threading.Thread(target=_tee, args=(child.stderr, [sys.stderr.buffer, log_file], lock), daemon=True),
    ]
    # forwarded before any output flows: a SIGTERM sent once the command printed must reach it (on a
    # loaded machine the output could be read, and the signal sent, before a later install ran)
    previous = _forward_sigterm(child)
    try:
        for thread in [*tees, threading.Thread(target=_sample_tree, args=(child.pid, usage, done), daemon=True)]:
            thread.start()
        while True:
            try:
                exit_code = child.wait()
                break
            except KeyboardInterrupt:
                continue  # the command got the Ctrl-C too; its ending is what we record
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    end = time.time()
    done.set()
    for thread in tees:
        thread.join(10)
    log_file.close()
    return _Execution(exit_code, start, end, usage, Path(log_file.name))


def _record_outcome(store: RunStore, run_id: str, command: list[str], run: _Execution, joined: bool, extra: dict[str, Any]) -> str:
    """Append what only the parent saw to the run's journal; return the run's final status."""
    paths = store.layout.run(run_id)
    status = _final_status((read_json(paths.run_json, {}) or {}).get("status"), run.exit_code)
    target = paths.artifacts / OUTPUT_LOG
    shutil.copyfile(run.log_path, target)
    size, digest = digest_path(target, SHA256)
    peak = run.usage.peak_rss_mb or None
    outcome: ProcessData = {"exit_code": run.exit_code, "duration": run.end - run.start, "peak_rss_mb": peak, "command": command}
    end = run.end
    events: list[Event] = [
        *[SystemEvent(UNNUMBERED, t, v) for t, v in run.usage.samples],
        ArtifactEvent(UNNUMBERED, end, OUTPUT_LOG, target.relative_to(paths.root).as_posix(), size, digest),
        RecordEvent(UNNUMBERED, end, PROCESS, outcome),
        StatusEvent(UNNUMBERED, end, status),
    ]
    fields: dict[str, Any] = {"exit_code": run.exit_code, "command_duration": run.end - run.start, **extra}
    if not joined:  # the run was made after the command: its times and memory are the command's
        fields.update(start_time=run.start, peak_rss_mb=peak)
    append_to_run(store, paths, events, status=status, **fields)
    return status


def _deliver_outcome(store: RunStore, run_id: str) -> None:
    """Send what was appended after the command to the run's remote backends, as its own
    ``finish()`` would have (bounded by its ``finish_timeout``); what is still owed waits for
    ``unitrack sync``."""
    from unitrack.config import load_config
    from unitrack.sync import sync_run

    run = read_json(store.layout.run(run_id).run_json, {}) or {}
    config = load_config({k: v for k, v in (run.get("config") or {}).items() if k != "store_dir"})
    if not config.tracking.remote_backends:
        return
    for result in sync_run(store, run_id, timeout=config.tracking.finish_timeout):
        if not result.in_sync:
            print(
                f"unitrack: {result.backend} still owes {result.owed_after} event(s) of run {run_id}"
                f" ({result.error or result.skipped}); `unitrack sync {run_id}` delivers them",
                file=sys.stderr,
            )


def run_committed(
    command: list[str],
    store: RunStore,
    message: str | None = None,
    tags: dict[str, str] | None = None,
    cwd: Path | None = None,
    experiment: str | None = None,
    extra_run_fields: dict[str, Any] | None = None,
    config: str | None = None,
) -> CommitResult:
    """Run ``command`` as the tracked run; return its id and the command's exit code.

    ``config`` (a unitrack YAML file) configures the run made here when the command does not
    make its own: its backends, tags, capture settings.
    """
    if not command:
        raise ValueError("no command to run: write it after `--`, e.g. unitrack commit -m 'try' -- python train.py")
    run_id = new_run_id()
    env = child_environment(run_id, store, message, dict(tags or {}), command)
    run = _execute(command, env, cwd)
    try:
        joined = store.layout.run(run_id).run_json.exists()
        if not joined:
            _create_run_for(run_id, store, env, experiment or _experiment_name(command), cwd, config)
        status = _record_outcome(store, run_id, command, run, joined, dict(extra_run_fields or {}))
        _deliver_outcome(store, run_id)
    finally:
        os.unlink(run.log_path)
    return CommitResult(run_id, run.exit_code, joined, status)


def shell_exit_code(exit_code: int) -> int:
    """A child's return code as a shell reports it: killed by signal N is 128+N."""
    return 128 - exit_code if exit_code < 0 else exit_code

"""Shared fixtures: every test runs in its own folder with its own store and a clean environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Settings that keep trackers quick in tests; each test adds what it exercises.
QUIET = {"monitoring": {"enabled": False}, "capture": {"packages": False}}


# How long a test waits for a condition it means (a worker delivered, a sample was written). Generous on
# purpose: the suite must pass on a loaded 2-core machine, and a condition that holds ends the wait at once.
PATIENCE_S = 60.0
# How long a child process (an example, a script, a launcher) may run before the test calls it hung: a
# guard against hangs, not a speed test. The loaded machine ran MLflow's start 80 s where it takes 5 s idle.
PROCESS_TIMEOUT_S = 900.0


def wait_until(condition: Callable[[], Any], what: str, timeout: float = PATIENCE_S) -> Any:
    """Poll ``condition`` until it returns something truthy (returned) or fail after ``timeout`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def quiet_config(**sections: Any) -> dict[str, Any]:
    """QUIET merged with ``sections`` (one level deep)."""
    config: dict[str, Any] = {k: dict(v) for k, v in QUIET.items()}
    for key, value in sections.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    return config


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith(("UNITRACK", "MLFLOW_", "WANDB_", "ANTHROPIC_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNITRACK_DIR", str(tmp_path / "store"))
    return tmp_path


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


def journal(run_dir: Path) -> list[dict[str, Any]]:
    """The parsed journal of a run."""
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def metric_points(run_dir: Path, key: str) -> list[tuple[int, Any]]:
    return [(e["step"], e["values"][key]) for e in journal(run_dir) if e["kind"] == "metric" and key in e["values"]]


def run_script(code: str, tmp_path: Path, *args: str, timeout: float = PROCESS_TIMEOUT_S, **popen: Any) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script in a fresh interpreter (same environment, same store)."""
    script = tmp_path / f"script_{abs(hash(code))}.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path, **popen
    )


def start_script(code: str, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / f"script_{abs(hash(code))}.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )

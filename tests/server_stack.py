"""``unitrack server`` as the tests start it: a real subprocess, its readiness read from its output,
its environment from ``<data>/client.env``, stopped with Ctrl-C (SIGINT) like a person would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from unitrack.server.procs import free_port
from unitrack.server.stack import CLIENT_ENV, READY_LINE


class StackProcess:
    """One ``unitrack server`` (by default ``--db postgresql --artifacts s3``) with its data in ``data``."""

    def __init__(self, data: Path, port: int | None = None, *options: str, env: dict[str, str] | None = None) -> None:
        self.data = data
        self.extra_env = env or {}  # on top of this process's environment less its MLFLOW_* and AWS_*
        self.port = port or free_port()
        self.options = options or ("--db", "postgresql", "--artifacts", "s3", "--s3-port", "0", "--workers", "2")
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 240.0) -> StackProcess:
        """Start (or start again: same data, same port) and wait for the ready line."""
        self.output = []
        command = [
            sys.executable, "-m", "unitrack.cli.app", "server", "--data", str(self.data), "--port", str(self.port),
            *self.options,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))} | self.extra_env
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError("unitrack server exited:\n" + "".join(self.output))
            self.output.append(line)
            if line.startswith(READY_LINE):
                return self
        self.interrupt()
        raise TimeoutError("unitrack server was not ready:\n" + "".join(self.output))

    @property
    def env(self) -> dict[str, str]:
        """What ``unitrack server`` told clients to export."""
        lines = (self.data / CLIENT_ENV).read_text().splitlines()
        return dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))

    def service_pids(self) -> list[int]:
        """The pids of the services, as ``unitrack server`` printed them."""
        pids = []
        for line in self.output:
            if "(pid " in line:
                pids.append(int(line.split("(pid ", 1)[1].split(",")[0].split(")")[0]))
        return pids

    def interrupt(self, timeout: float = 120.0) -> int:
        """Ctrl-C; wait for ``unitrack server`` to stop everything and exit; return its status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=timeout)
        self.output.append(out or "")
        return self.process.returncode


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False

"""Child processes of the stack: started in their own session (so a Ctrl-C in the terminal reaches
only ``unitrack server``, which then stops them in order), optionally as an unprivileged user (the
PostgreSQL server refuses to run as root), and signalled when their parent dies, so that a killed
``unitrack server`` leaves nothing behind."""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def unprivileged_user() -> pwd.struct_passwd | None:
    """The account services run as when we are root: ``postgres`` (Debian's package makes it), else ``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' account exists to run PostgreSQL as")


def make_reachable(folder: Path, user: pwd.struct_passwd) -> list[Path]:
    """Let ``user`` reach ``folder``: chown it, and add search permission (x, not read) to each parent
    that lacks it for others. Returns the parents changed, so the caller can say so."""
    folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for parent in reversed(folder.absolute().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)
            changed.append(parent)
    for root, dirs, files in os.walk(folder):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, user.pw_uid, user.pw_gid)
    return changed


def child_setup(user: pwd.struct_passwd | None) -> Callable[[], None]:
    def setup() -> None:
        if user is not None:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        try:  # after setuid: a change of credentials clears the parent-death signal
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass

    return setup


class Child:
    """One service process, its log in ``log_path``."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        user: pwd.struct_passwd | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        child_env = dict(os.environ if env is None else env)
        if user is not None:
            child_env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
        with open(log_path, "ab") as log:
            if user is not None:
                os.chown(log_path, user.pw_uid, user.pw_gid)
            self.process = subprocess.Popen(
                list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=child_env, cwd=cwd,
                start_new_session=True, preexec_fn=child_setup(user),
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll ``ready`` until it holds; raise with the log's tail when the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no log at {self.log_path})"
        return "\n".join(f"  {line}" for line in text[-lines:]) + f"\n  (whole log: {self.log_path})"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Signal the process (its whole session for a forking server), wait; kill what outlives ``timeout``."""
        if self.running():
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # workers a server forked may outlive it: kill what is left of its session
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(10)

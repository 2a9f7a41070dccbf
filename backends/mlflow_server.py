"""Start a real ``mlflow server`` on 127.0.0.1 with a SQLite (or PostgreSQL) store, and stop it.

Run it: ``python -m backends.mlflow_server --dir mlruns-server --port 5000`` (Ctrl-C stops it).
The tests and benches use :class:`MlflowServer` the same way: a free port, its own process
group (so that stopping it also stops the workers it forked), one worker, killed at teardown.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """One ``mlflow server`` process; ``uri`` is its tracking URI once :meth:`start` returned."""

    def __init__(
        self, folder: Path, port: int | None = None, store_uri: str | None = None, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.folder = Path(folder).absolute()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.store_uri = store_uri or f"sqlite:///{self.folder / 'mlflow.db'}"
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 600.0) -> MlflowServer:
        """Start the server and wait until it answers. It takes seconds on an idle machine and more
        than a minute on a loaded one; a server that dies fails at once, so the long bound costs nothing."""
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", self.store_uri,
            "--artifacts-destination", str(self.folder / "artifacts"),
            *self.extra_args,
        ]  # fmt: skip
        log = open(self.folder / "server.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
        self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}: see {self.folder / 'server.log'}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"mlflow server did not answer on {self.uri} within {timeout:.0f} s")

    def stop(self) -> None:
        """Kill the server's whole process group and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("mlflow-server"), help="store and artifacts folder")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--store-uri", help="e.g. postgresql://user:pass@localhost/mlflow (default: SQLite in --dir)")
    args = parser.parse_args()
    with MlflowServer(args.dir, args.port, args.store_uri) as server:
        print(f"MLflow tracking server at {server.uri} (store {server.store_uri}); Ctrl-C stops it", flush=True)
        try:
            server.process.wait()  # type: ignore[union-attr]
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

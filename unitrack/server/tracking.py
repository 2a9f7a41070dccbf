"""The MLflow tracking server: ``mlflow server`` on a store URI (SQLite file or PostgreSQL) with
artifacts in a folder or an S3 bucket, served through it (``mlflow-artifacts:/``) unless
``serve_artifacts`` is off. Tests and benches use :class:`MlflowServer` on its own, too."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from unitrack.server.procs import Child, free_port


class MlflowServer:
    """One ``mlflow server``; ``uri`` is its tracking URI once :meth:`start` returned."""

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        store_uri: str | None = None,
        extra_args: tuple[str, ...] = (),
        *,
        host: str = "127.0.0.1",
        workers: int = 1,
        artifacts: str | None = None,
        serve_artifacts: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        self.folder = Path(folder).absolute()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.store_uri = store_uri or f"sqlite:///{self.folder / 'mlflow.db'}"
        self.artifacts = artifacts or str(self.folder / "artifacts")
        self.serve_artifacts = serve_artifacts
        self.workers = workers
        self.extra_args = extra_args
        self.env = env or {}
        self.child: Child | None = None

    @property
    def uri(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 600.0) -> MlflowServer:
        """Start and wait for ``/health``; on PostgreSQL the first start runs MLflow's schema
        migrations (26-34 s measured here), and on a loaded machine even SQLite took over 80 s, and
        the test suite run twice at once saw 120 s missed: hence the generous bound (a server that
        exits fails at once, so the bound costs nothing when it works)."""
        artifact_args = (
            ["--serve-artifacts", "--artifacts-destination", self.artifacts]
            if self.serve_artifacts
            else ["--no-serve-artifacts", "--default-artifact-root", self.artifacts]
        )
        # uvicorn kills a worker that misses a 5 s health check: on a loaded machine a worker still
        # importing MLflow does, and is killed again and again
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", self.host, "--port", str(self.port),
            "--workers", str(self.workers), "--backend-store-uri", self.store_uri, *artifact_args,
            "--uvicorn-opts", "--timeout-worker-healthcheck 120", *self.extra_args,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
        env.update(self.env)
        self.child = Child("mlflow server", command, self.folder / "server.log", env=env)
        try:
            self.child.wait_ready(self._healthy, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and every worker it forked (its whole session)."""
        if self.child is not None:
            self.child.stop(timeout=5)  # uvicorn's workers and job runners go with the session

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

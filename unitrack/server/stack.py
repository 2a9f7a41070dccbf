"""The whole stack: the database, the object store, MLflow on top, TensorBoard beside, started in
that order and stopped in the reverse one. ``unitrack server`` is :func:`serve`.

What a client needs (the tracking URI, the S3 endpoint and keys) is printed when the stack is
ready and written to ``<data>/client.env`` (mode 600). Generated secrets are printed in full only
the first time (when they are made); later starts point at that file instead.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from unitrack.server.procs import Child, free_port, port_open
from unitrack.server.tracking import MlflowServer

READY_LINE = "unitrack server: ready"
CLIENT_ENV = "client.env"


@dataclass
class StackOptions:
    """What ``unitrack server`` was asked for."""

    data: Path
    db: Literal["sqlite", "postgresql"] = "sqlite"
    artifacts: Literal["local", "s3"] = "local"
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 4
    serve_artifacts: bool = True
    s3_endpoint: str | None = None
    s3_port: int = 8333
    bucket: str | None = None
    tensorboard: bool = False
    tensorboard_port: int = 6006
    tensorboard_log_dir: Path = Path("logs/tensorboard")
    allowed_hosts: str | None = None


@dataclass
class Stack:
    """The started services; :meth:`stop` ends them all (idempotent)."""

    options: StackOptions
    services: list[Any] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secret_keys: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    fresh_secrets: bool = False

    def start(self) -> Stack:
        opts = self.options
        data = opts.data.expanduser().absolute()
        data.mkdir(parents=True, exist_ok=True)
        try:
            store_uri = self._database(data)
            artifacts, mlflow_env = self._artifacts(data)
            port = opts.port or free_port(opts.host)
            if port_open("127.0.0.1" if opts.host == "0.0.0.0" else opts.host, port):
                raise RuntimeError(f"port {port} is taken: choose another with --port (0 picks a free one)")
            server = MlflowServer(
                data / "mlflow", port, store_uri, host=opts.host, workers=opts.workers, artifacts=artifacts,
                serve_artifacts=opts.serve_artifacts, env=mlflow_env,
                extra_args=("--allowed-hosts", opts.allowed_hosts) if opts.allowed_hosts else (),
            )  # fmt: skip
            self.services.append(server)
            server.start()
            self.env["MLFLOW_TRACKING_URI"] = server.uri
            if opts.tensorboard:
                self._tensorboard(data)
        except BaseException:
            self.stop()
            raise
        self._write_client_env(data)
        return self

    def _database(self, data: Path) -> str:
        if self.options.db == "sqlite":
            (data / "mlflow").mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{data / 'mlflow' / 'mlflow.db'}"
        from unitrack.server.postgres import Postgres

        database = Postgres(data, "127.0.0.1", free_port())  # only MLflow talks to it: never exposed
        self.services.append(database)
        fresh = not (database.folder / "password").exists()
        database.start()
        self.notes.extend(database.notes)
        self.fresh_secrets |= fresh
        return database.uri

    def _artifacts(self, data: Path) -> tuple[str, dict[str, str]]:
        """The artifact destination for MLflow, and the environment MLflow needs to reach it."""
        opts = self.options
        if opts.artifacts == "local":
            if not opts.serve_artifacts:
                raise ValueError("--no-serve-artifacts needs --artifacts s3: clients cannot reach a local folder")
            return str(data / "mlflow" / "artifacts"), {}
        from unitrack.server.seaweed import CHECKPOINT_BUCKET, MLFLOW_BUCKET

        if opts.s3_endpoint:
            endpoint = opts.s3_endpoint
            keys = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in os.environ}
            bucket = opts.bucket or MLFLOW_BUCKET
        else:
            from unitrack.server.seaweed import SeaweedS3

            store = SeaweedS3(data, opts.host, opts.s3_port)
            self.services.append(store)
            store.start((MLFLOW_BUCKET, CHECKPOINT_BUCKET, *((opts.bucket,) if opts.bucket else ())))
            endpoint = store.endpoint
            keys = {"AWS_ACCESS_KEY_ID": store.credentials.access_key,
                    "AWS_SECRET_ACCESS_KEY": store.credentials.secret_key}  # fmt: skip
            self.secret_keys.add("AWS_SECRET_ACCESS_KEY")
            self.fresh_secrets |= store.credentials.generated
            bucket = opts.bucket or MLFLOW_BUCKET
            self.env["UNITRACK_CHECKPOINT_URL"] = f"s3://{CHECKPOINT_BUCKET}"
        s3_env = {"AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint, **keys}
        s3_env.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        self.env.update(s3_env)
        return f"s3://{bucket}/artifacts", s3_env

    def _tensorboard(self, data: Path) -> None:
        opts = self.options
        log_dir = opts.tensorboard_log_dir.expanduser().absolute()
        log_dir.mkdir(parents=True, exist_ok=True)
        port = opts.tensorboard_port or free_port(opts.host)
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(log_dir), "--host", opts.host,
                   "--port", str(port)]  # fmt: skip
        board = Child("tensorboard", command, data / "tensorboard.log")
        self.services.append(board)
        host = "127.0.0.1" if opts.host == "0.0.0.0" else opts.host
        board.wait_ready(lambda: port_open(host, port), 120)
        self.env["UNITRACK_TENSORBOARD_URL"] = f"http://{host}:{port}"

    def _write_client_env(self, data: Path) -> None:
        path = data / CLIENT_ENV
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text("".join(f"export {k}={v}\n" for k, v in self.env.items()))

    def describe(self) -> str:
        """What to tell the person who started the stack (and what a client needs)."""
        data = self.options.data.expanduser().absolute()
        lines = [f"unitrack server: data in {data}"]
        lines += [f"  note: {note}" for note in self.notes]
        for service in self.services:
            lines.append(f"  {type(service).__name__:<12} {_where(service)}")
        lines.append("Point a client at it (also in " + str(data / CLIENT_ENV) + "):")
        for key, value in self.env.items():
            if key in self.secret_keys and not self.fresh_secrets:
                value = f"<see {data / CLIENT_ENV}>"
            lines.append(f"  export {key}={value}")
        if self.fresh_secrets and self.secret_keys:
            lines.append("  (the secret above is printed this once; it is kept in the file, mode 600)")
        return "\n".join(lines)

    def wait(self) -> int:
        """Block until a service exits on its own (1) or we are asked to stop (0)."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1.0):
            for service in self.services:
                child = service if isinstance(service, Child) else service.child
                if child is not None and not child.running():
                    print(f"unitrack server: {child.name} exited:\n{child.log_tail()}", file=sys.stderr, flush=True)
                    return 1
        return 0

    def stop(self) -> None:
        for service in reversed(self.services):
            try:
                print(f"unitrack server: stopping {type(service).__name__}", file=sys.stderr, flush=True)
                service.stop()
            except Exception as exc:  # stop the rest regardless
                print(f"unitrack server: stopping {type(service).__name__}: {exc}", file=sys.stderr)
        self.services.clear()


def _where(service: Any) -> str:
    if isinstance(service, MlflowServer):
        pid = service.child.pid if service.child else "-"
        store = service.store_uri.split("://")[0]
        return f"{service.uri}  (pid {pid}, store {store}, {service.workers} worker(s), artifacts {service.artifacts})"
    if isinstance(service, Child):
        return f"(pid {service.pid})"
    endpoint = getattr(service, "endpoint", None)
    if endpoint:
        return f"{endpoint}  (pid {service.child.pid})"
    return f"127.0.0.1:{service.port}  (pid {service.child.pid}, data {service.folder})"


def serve(options: StackOptions, out: TextIO = sys.stdout) -> int:
    """Start the stack, print what a client needs, run until Ctrl-C (or a service dies), stop it all."""
    stack = Stack(options)
    print(f"unitrack server: starting ({options.db} store, {options.artifacts} artifacts)...", file=out, flush=True)
    stack.start()
    try:
        print(stack.describe(), file=out, flush=True)
        print(f"{READY_LINE} (Ctrl-C stops every service)", file=out, flush=True)
        status = stack.wait()
    finally:
        print("unitrack server: stopping...", file=out, flush=True)
        stack.stop()
        print("unitrack server: stopped", file=out, flush=True)
    return status

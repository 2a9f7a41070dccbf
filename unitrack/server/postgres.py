"""PostgreSQL from the system's binaries (Debian's ``postgresql`` package), one database for MLflow.

The cluster lives in ``<data>/postgres/pgdata``; it is created by ``initdb`` the first time, with a
generated password for TCP connections (local socket connections are trusted) kept beside it.
As root the server runs as the ``postgres`` account: PostgreSQL refuses root, and that account
must be able to reach the folder (see ``procs.make_reachable``).
"""

from __future__ import annotations

import glob
import secrets
import signal
import subprocess
from pathlib import Path

from unitrack.server.procs import Child, child_setup, make_reachable, unprivileged_user

DB_USER = "unitrack"
DATABASE = "mlflow"


def binaries() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``postgres``."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [p for p in found if (p / "postgres").exists()]
    if not found:
        raise RuntimeError(
            "--db postgresql needs PostgreSQL's server binaries (initdb, postgres): "
            "apt-get install postgresql (or use --db sqlite)"
        )
    return max(found, key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()])


class Postgres:
    """One PostgreSQL server on ``host:port`` for the stack's lifetime."""

    def __init__(self, data: Path, host: str, port: int) -> None:
        self.folder = data / "postgres"
        self.pgdata = self.folder / "pgdata"
        self.host, self.port = host, port
        self.bin = binaries()
        self.user = unprivileged_user()
        self.child: Child | None = None
        self.notes: list[str] = []

    @property
    def password(self) -> str:
        return (self.folder / "password").read_text().strip()

    @property
    def uri(self) -> str:
        """SQLAlchemy's URI, naming the driver: a bare ``postgresql://`` means psycopg 3 to SQLAlchemy 2.1."""
        return f"postgresql+psycopg2://{DB_USER}:{self.password}@{self.host}:{self.port}/{DATABASE}"

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / command[0]), *command[1:]], capture_output=True, text=True, timeout=120,
            preexec_fn=child_setup(self.user), cwd="/",
        )  # fmt: skip

    def start(self, timeout: float = 60.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / "password"
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(24) + "\n")
            password_file.chmod(0o600)
        (self.folder / "socket").mkdir(exist_ok=True)
        if self.user is not None:
            changed = make_reachable(self.folder, self.user)
            if changed:
                self.notes.append(
                    f"gave other users search permission (o+x) on {', '.join(map(str, changed))} "
                    f"so that PostgreSQL can run as {self.user.pw_name!r}"
                )
        if not (self.pgdata / "PG_VERSION").exists():
            made = self._run(
                "initdb", "-D", str(self.pgdata), "-U", DB_USER, "-E", "UTF8", "--auth-local=trust",
                "--auth-host=scram-sha-256", f"--pwfile={password_file}",
            )  # fmt: skip
            if made.returncode:
                raise RuntimeError(f"initdb failed:\n{made.stdout}{made.stderr}")
        self.child = Child(
            "postgresql",
            [str(self.bin / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
             "-k", str(self.folder / "socket"), "-c", f"listen_addresses={self.host}"],
            self.folder / "postgres.log", user=self.user, cwd=Path("/"),
        )  # fmt: skip
        self.child.wait_ready(self._ready, timeout)
        created = self._run("createdb", "-h", str(self.folder / "socket"), "-p", str(self.port), "-U", DB_USER, DATABASE)
        if created.returncode and "already exists" not in created.stderr:
            raise RuntimeError(f"createdb {DATABASE} failed: {created.stderr.strip()}")

    def _ready(self) -> bool:
        socket_dir = str(self.folder / "socket")
        probe = self._run("pg_isready", "-q", "-U", DB_USER, "-d", "postgres", "-h", socket_dir, "-p", str(self.port))
        return probe.returncode == 0

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(signal.SIGINT)  # PostgreSQL's "fast" shutdown: roll back, checkpoint, exit

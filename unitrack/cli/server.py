"""``unitrack server`` (the team stack in the foreground) and ``unitrack pull`` (a verified checkpoint as files)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unitrack.cli.common import StoreOption, cli_errors
from unitrack.store.layout import store_path


def server_command(
    data: Annotated[
        Path | None, typer.Option("--data", help="Folder for every service's data (default: <store>/server).")
    ] = None,
    db: Annotated[str, typer.Option("--db", help="MLflow's tracking store: sqlite or postgresql.")] = "sqlite",
    artifacts: Annotated[
        str, typer.Option("--artifacts", help="Where artifacts live: local (a folder) or s3 (SeaweedFS, or --s3-endpoint).")
    ] = "local",
    host: Annotated[str, typer.Option("--host", help="Interface the services listen on (0.0.0.0: every one).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, help="MLflow's port (0: a free one).")] = 5000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="MLflow server worker processes.")] = 4,
    serve_artifacts: Annotated[
        bool, typer.Option("--serve-artifacts/--no-serve-artifacts", help="Clients reach artifacts through MLflow (default) or directly in S3.")
    ] = True,
    s3_endpoint: Annotated[
        str | None, typer.Option("--s3-endpoint", help="Use this S3 endpoint (keys from AWS_* variables) instead of starting SeaweedFS.")
    ] = None,
    s3_port: Annotated[int, typer.Option("--s3-port", min=0, help="SeaweedFS's S3 port (0: a free one).")] = 8333,
    bucket: Annotated[str | None, typer.Option("--bucket", help="Bucket for MLflow's artifacts (default: mlflow).")] = None,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also run TensorBoard on the log dir.")] = False,
    tensorboard_port: Annotated[int, typer.Option("--tensorboard-port", min=0, help="TensorBoard's port.")] = 6006,
    logdir: Annotated[
        Path, typer.Option("--logdir", help="TensorBoard's log dir (tracking.tensorboard_log_dir).")
    ] = Path("logs/tensorboard"),
    allowed_hosts: Annotated[
        str | None,
        typer.Option("--allowed-hosts", help="Host headers MLflow accepts beyond localhost, e.g. 'mlflow.team,mlflow.team:5000'."),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Run MLflow on SQLite or PostgreSQL with artifacts on disk or in S3 (and TensorBoard), until Ctrl-C."""
    with cli_errors():
        from unitrack.server.stack import StackOptions, serve

        if db not in ("sqlite", "postgresql"):
            raise ValueError(f"--db {db!r}: use sqlite or postgresql")
        if artifacts not in ("local", "s3"):
            raise ValueError(f"--artifacts {artifacts!r}: use local or s3")
        if s3_endpoint and artifacts != "s3":
            raise ValueError("--s3-endpoint goes with --artifacts s3")
        options = StackOptions(
            data=data if data is not None else store_path(store) / "server", db=db, artifacts=artifacts,  # type: ignore[arg-type]
            host=host, port=port, workers=workers, serve_artifacts=serve_artifacts, s3_endpoint=s3_endpoint,
            s3_port=s3_port, bucket=bucket, tensorboard=tensorboard, tensorboard_port=tensorboard_port,
            tensorboard_log_dir=logdir, allowed_hosts=allowed_hosts,
        )  # fmt: skip
        status = serve(options)
    if status:
        raise typer.Exit(status)


def pull_command(
    ref: Annotated[
        str, typer.Argument(help="A checkpoint: a path, RUN@best|last|STEP, mlflow://HOST:PORT/RUN@best|last|STEP or s3://bucket/prefix/NAME.")
    ],
    to: Annotated[Path, typer.Option("--to", help="Folder to put the checkpoint in (as <folder>/<checkpoint name>).")],
    store: StoreOption = None,
    key_env: Annotated[
        str, typer.Option("--key-env", help="Environment variable with the key of encrypted checkpoints.")
    ] = "UNITRACK_CHECKPOINT_KEY",
) -> None:
    """Fetch a checkpoint's files, verified (every file's and tensor's checksum) before they are kept."""
    with cli_errors():
        from unitrack.checkpoint.restore_any import pull_checkpoint

        folder, label = pull_checkpoint(ref, to, store=store, key_env=key_env)
        typer.echo(f"{folder}  (verified; from {label})")


def register(app: typer.Typer) -> None:
    app.command("server")(server_command)
    app.command("pull")(pull_command)

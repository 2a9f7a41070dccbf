"""``unitrack verify [RUN]``: check the checksums of every checkpoint of a run, or of the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unitrack.cli.common import JsonOption, StoreOption, cli_errors, open_store


def verify_command(
    run: Annotated[str | None, typer.Argument(help="A run id, prefix or latest; default: every run.")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
    key_env: Annotated[
        str, typer.Option("--key-env", help="Environment variable with the key of encrypted checkpoints.")
    ] = "UNITRACK_CHECKPOINT_KEY",
) -> None:
    """Verify every checkpoint (each file's and tensor's BLAKE3, or SHA-256 for older ones); exit 1 when any is damaged."""
    with cli_errors():
        from dataclasses import asdict

        from unitrack.checkpoint.audit import audit_run
        from unitrack.cli.common import print_json
        from unitrack.hashing import label_of

        runs_store = open_store(store)
        folders: list[Path] = (
            [runs_store.resolve(run).root] if run else [runs_store.layout.run(i).root for i in runs_store.run_ids()]
        )
        reports = [report for folder in folders for report in audit_run(folder, key_env)]
        if as_json:
            print_json([{**asdict(r), "ok": r.ok} for r in reports])
        else:
            for report in reports:
                state = "ok" if report.ok else "DAMAGED"
                checked = label_of(report.algorithm) if report.algorithm else "manifest unreadable"
                typer.echo(f"{state:8} {report.run_id}/{report.name}  {report.path}  ({checked})")
                for problem in report.problems:
                    typer.echo(f"         - {problem}")
            damaged = sum(not r.ok for r in reports)
            typer.echo(f"{len(reports)} checkpoint(s) checked, {damaged} damaged")
    if any(not r.ok for r in reports):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_command)

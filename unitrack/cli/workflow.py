"""``commit``, ``clean``, ``rerun`` and ``rollback``: the git-like workflow over runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unitrack.cli.common import JsonOption, StoreOption, cli_errors

RunArgument = Annotated[str, typer.Argument(help="A run id, an unambiguous prefix, or latest~N.")]


def _tags(items: list[str] | None) -> dict[str, str]:
    tags = {}
    for item in items or []:
        key, _, value = item.partition("=")
        if not key.strip():
            raise ValueError(f"--tag {item!r}: write KEY=VALUE or KEY")
        tags[key.strip()] = value
    return tags


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def register(app: typer.Typer) -> None:
    @app.command(
        "commit",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def commit_command(
        ctx: typer.Context,
        message: Annotated[str, typer.Option("--message", "-m", help="What this run tries.")],
        tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag KEY=VALUE or KEY (repeatable).")] = None,
        experiment: Annotated[str | None, typer.Option("--experiment", help="Experiment of a script that does not name one.")] = None,
        config: Annotated[
            str | None,
            typer.Option("--config", "-c", help="unitrack config (backends...) for a command that does not use unitrack."),
        ] = None,
        store: StoreOption = None,
    ) -> None:
        """Run a command as a tracked, versioned run: unitrack commit -m MSG [--tag k=v] -- CMD ...

        A script that uses unitrack joins the run; any other command still gets one (command,
        exit code, duration, output log, git state, system usage). Prints the run id and exits
        with the command's exit code.
        """
        with cli_errors():
            from unitrack.cli.common import open_store
            from unitrack.workflow.commit import run_committed, shell_exit_code

            runs_store = open_store(store, must_exist=False)
            result = run_committed(list(ctx.args), runs_store, message, _tags(tag), experiment=experiment, config=config)
        typer.echo(f"unitrack: run {result.run_id} {result.status} (exit code {result.exit_code})", err=True)
        typer.echo(result.run_id)
        raise typer.Exit(shell_exit_code(result.exit_code))

    @app.command("clean")
    def clean_command(
        store: StoreOption = None,
        keep_last: Annotated[int | None, typer.Option("--keep-last", min=0, help="Keep the N newest runs.")] = None,
        older_than: Annotated[str | None, typer.Option("--older-than", help="Only runs started before this age: 30d, 12h, 2w.")] = None,
        failed: Annotated[bool, typer.Option("--failed", help="Only failed or crashed runs.")] = False,
        status: Annotated[list[str] | None, typer.Option("--status", help="Only runs with this status (repeatable).")] = None,
        checkpoints_only: Annotated[
            bool, typer.Option("--checkpoints-only", help="Keep the runs; remove their non-best checkpoints and snapshots.")
        ] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would be removed.")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Remove old or failed runs (or only their checkpoints); prints what goes and the space freed."""
        with cli_errors():
            from unitrack.cli.common import open_store, print_json
            from unitrack.workflow.clean import apply_clean, plan_clean, select_runs

            runs_store = open_store(store)
            plan = plan_clean(runs_store, select_runs(runs_store, keep_last, older_than, failed, status or ()), checkpoints_only)
            total = sum(r.bytes for r in plan)
            if as_json and (dry_run or not plan):
                print_json({"dry_run": dry_run, "remove": [r.to_dict() for r in plan], "bytes": total})
                return
            if not plan:
                typer.echo("nothing to clean")
                return
            if not as_json:
                for removal in plan:
                    label = removal.what + (f" {removal.name}" if removal.name else "")
                    typer.echo(f"{removal.run_id}  {label:<24} {_size(removal.bytes):>10}  {removal.path}")
            if dry_run:
                typer.echo(f"would free {_size(total)} ({len(plan)} item(s)); nothing removed (--dry-run)")
                return
            if not yes and not typer.confirm(f"remove {len(plan)} item(s), {_size(total)}?", default=False):
                typer.echo("nothing removed")
                raise typer.Exit(1)
            freed = apply_clean(runs_store, plan)
            if as_json:
                print_json({"dry_run": False, "remove": [r.to_dict() for r in plan], "bytes": freed})
            else:
                typer.echo(f"removed {len(plan)} item(s), freed {_size(freed)}; audit: {runs_store.layout.audit}")

    @app.command("rerun")
    def rerun_command(
        run: RunArgument,
        store: StoreOption = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would run, and where.")] = False,
    ) -> None:
        """Run a recorded run again at its code (commit + patch) as a new run linked by rerun_of."""
        with cli_errors():
            from unitrack.cli.common import open_store, print_json
            from unitrack.workflow.commit import shell_exit_code
            from unitrack.workflow.replay import describe_rerun, load_run_code, rerun

            runs_store = open_store(store)
            if dry_run:
                print_json(describe_rerun(load_run_code(runs_store, run), runs_store))
                return
            result = rerun(runs_store, run)
        typer.echo(f"unitrack: run {result.run_id} {result.status} (exit code {result.exit_code})", err=True)
        typer.echo(result.run_id)
        raise typer.Exit(shell_exit_code(result.exit_code))

    @app.command("rollback")
    def rollback_command(
        run: RunArgument,
        to: Annotated[Path, typer.Option("--to", help="A new or empty folder to write the run's code, config and best checkpoint into.")],
        store: StoreOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Write a run's code (commit + patch), configuration and best checkpoint into a folder."""
        with cli_errors():
            from unitrack.cli.common import open_store, print_json
            from unitrack.workflow.replay import rollback

            written = rollback(open_store(store), run, to)
            if as_json:
                print_json(written)
                return
            for key in ("code", "config", "checkpoint"):
                if key in written:
                    typer.echo(f"{key:<11} {written[key]}")
            typer.echo(f"run it:     cd {written['run_in']} && {' '.join(written['command'])}")

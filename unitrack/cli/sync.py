"""``unitrack sync``: replay to the backends what they have not acknowledged (idempotent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from unitrack.cli.common import JsonOption, StoreOption, cli_errors, open_store

if TYPE_CHECKING:
    from unitrack.sync import SyncResult


def sync_command(
    run: Annotated[str | None, typer.Argument(help="A run id, prefix or latest; omit with --all.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Every run that owes something to a backend.")] = False,
    backend: Annotated[
        list[str] | None, typer.Option("--backend", "-b", help="Only this backend (repeatable): mlflow, wandb, tensorboard.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Longest time per run and backend, in seconds.")] = 300.0,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deliver what each backend still owes, from its cursor on; running it twice sends nothing twice."""
    with cli_errors():
        from unitrack.cli.common import print_json
        from unitrack.sync import sync_all, sync_run

        if bool(run) == all_runs:
            raise ValueError("name one run, or give --all")
        runs_store = open_store(store)
        results = sync_all(runs_store, backend, timeout) if all_runs else sync_run(runs_store, run or "", backend, timeout)
        if as_json:
            print_json([result.to_dict() for result in results])
        else:
            _print_results(results)
        if any(not result.in_sync and not result.skipped for result in results):
            raise typer.Exit(1)


def _print_results(results: list[SyncResult]) -> None:
    from rich.table import Table

    from unitrack.cli.common import console

    out = console()
    if not results:
        out.print("nothing to sync: every backend is in sync")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run", "backend", "delivered", "still owed", "state"):
        table.add_column(column)
    for result in results:
        if result.skipped:
            state = f"[dim]{result.skipped}[/dim]"
        elif result.in_sync:
            state = "[green]in sync[/green]"
        elif result.refused and not result.owed_after:
            state = f"[yellow]refused {result.refused} event(s) for good (kept locally)[/yellow]"
        else:
            state = f"[yellow]{result.error or 'behind'}[/yellow]"
        table.add_row(result.run_id, result.backend, str(result.delivered), str(result.owed_after), state)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("sync")(sync_command)

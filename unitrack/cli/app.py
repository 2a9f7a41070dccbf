"""The ``unitrack`` command. Commands import their implementation when they run, so that
``unitrack --help`` stays fast and loads neither torch nor any tracking backend."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Annotated

import typer

from unitrack.cli import coercion
from unitrack.cli.common import JsonOption, StoreOption, cli_errors, open_store

coercion.install()

app = typer.Typer(
    name="unitrack",
    help="Experiment tracking for PyTorch: find, inspect, compare and explain runs; commit and re-run them; sync backends, verify checkpoints, see how the weights moved.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command("ls")
def ls_command(
    store: StoreOption = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only runs with this tag: KEY or KEY=VALUE (repeatable).")] = None,
    git: Annotated[str | None, typer.Option("--git", help="Only runs of this git commit (a prefix is enough).")] = None,
    status: Annotated[list[str] | None, typer.Option("--status", help="Only runs with this status (repeatable).")] = None,
    filter_text: Annotated[
        str | None,
        typer.Option("--filter", help="An expression such as \"params.lr > 0.1 and metrics.acc >= 0.9\"."),
    ] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="Only runs of this experiment.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Show at most N runs (newest first).")] = None,
    group_by: Annotated[str | None, typer.Option("--group-by", help="List runs per git commit, experiment, status or Optuna study: git|experiment|status|study.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first."""
    with cli_errors():
        from unitrack.cli.common import print_json
        from unitrack.cli.runs import find_runs, print_runs

        runs_store = open_store(store, must_exist=False)
        runs = find_runs(runs_store, tag, git, status, filter_text, experiment, limit)
        if group_by is not None:
            from unitrack.cli.groups import group_runs, print_groups

            groups = group_runs(runs, group_by, runs_store)
            print_json(groups) if as_json else print_groups(groups, runs_store)
            return
        print_json(runs) if as_json else print_runs(runs, runs_store)


_RUN_REF_HELP = (
    "A run id or an unambiguous prefix of one; or a backend's run: mlflow://HOST:PORT/RUN_ID, "
    "mlflow:RUN_ID (MLFLOW_TRACKING_URI), wandb:PATH_TO_RUN_DIR, tb:LOGDIR[#RUN]."
)


@app.command("show")
def show_command(
    run: Annotated[str, typer.Argument(help=_RUN_REF_HELP)],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything recorded about one run."""
    with cli_errors():
        from unitrack.cli.runs import show_run
        from unitrack.readers import is_backend_ref

        show_run(open_store(store, must_exist=not is_backend_ref(run)), run, as_json)


@app.command("export")
def export_command(
    run: Annotated[str, typer.Argument(help=_RUN_REF_HELP)],
    store: StoreOption = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Every metric point as CSV (metric, step, time, value).")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """The whole run as JSON (default), with every metric point and its step; or the points as CSV."""
    with cli_errors():
        from unitrack.cli.common import import_numpy_one_blas_thread
        from unitrack.cli.runs import export_run

        import_numpy_one_blas_thread()
        if as_json and as_csv:
            raise ValueError("choose one of --json and --csv")
        from unitrack.readers import is_backend_ref

        export_run(open_store(store, must_exist=not is_backend_ref(run)), run, as_csv, out)


@app.command("reindex")
def reindex_command(store: StoreOption = None) -> None:
    """Rebuild the store's SQLite index from the run folders."""
    with cli_errors():
        count = open_store(store).reindex()
        typer.echo(f"indexed {count} run(s)")


# each command module adds its commands; imported here, at the end, because they use `app`'s helpers
from unitrack.cli import compare, server, sync, ui, verify, weights, workflow  # noqa: E402

for _commands in (compare, workflow, sync, weights, verify, server, ui):
    _commands.register(app)


@app.callback()
def _group() -> None:
    """The commands always form a group, even when :func:`main` runs only one of them."""


def _only(command: str) -> typer.Typer:
    """``app`` with only ``command`` when it names one: typer turns the signature of every registered
    command into click options before it runs any (~20 ms, a tenth of ``ls``)."""
    chosen = [info for info in app.registered_commands if info.name == command]
    if not chosen:
        return app
    narrowed = copy.copy(app)
    narrowed.registered_commands = chosen
    return narrowed


def main() -> None:
    (_only(sys.argv[1]) if len(sys.argv) > 1 else app)()


if __name__ == "__main__":
    main()

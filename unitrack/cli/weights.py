"""``unitrack delta`` and ``unitrack plot``: how a run's weights moved, as a table, JSON or pictures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from unitrack.cli.common import JsonOption, StoreOption, cli_errors, open_store
from unitrack.nonfinite import encode_number

TABLE_ROWS = 30


def register(app: typer.Typer) -> None:
    app.command("delta")(delta_command)
    app.command("plot")(plot_command)
    app.command("export-weights")(export_weights_command)


def delta_command(
    a: Annotated[str, typer.Argument(help="A run (RUN, RUN@best, RUN@STEP), a weights file or folder, or mlflow:RUN_ID.")],
    b: Annotated[str | None, typer.Argument(help="The second run or file; without it, A's own snapshots are compared.")] = None,
    from_step: Annotated[int | None, typer.Option("--from", help="With one run: the step to compare from (default: its first weights).")] = None,
    to_step: Annotated[int | None, typer.Option("--to", help="With one run: the step to compare to (default: its final weights).")] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, help="An element counts as changed when |delta| exceeds this.")] = 0.0,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows of the table (largest movers first); JSON has every tensor.")] = TABLE_ROWS,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """How each tensor moved between two sets of weights: L1, L2, relative, cosine, L∞, changed fraction."""
    with cli_errors():
        from unitrack.cli.common import print_json
        from unitrack.weights.compare import compare_sources, run_delta
        from unitrack.weights.refs import open_weights

        runs = open_store(store, must_exist=False)
        if b is None:
            report = run_delta(runs, a, from_step, to_step, tolerance)
        else:
            if from_step is not None or to_step is not None:
                raise ValueError("--from / --to pick steps of one run; with two runs write RUN@STEP")
            report = compare_sources(open_weights(runs, a), open_weights(runs, b), tolerance=tolerance)
        if as_json:
            print_json(report.to_dict())
        else:
            print_delta(report, top)


def print_delta(report: Any, top: int) -> None:
    from rich.table import Table

    from unitrack.cli.common import console

    out = console()
    out.print(f"[bold]{report.source_a}[/bold] → [bold]{report.source_b}[/bold]")
    table = Table(box=None, header_style="bold", pad_edge=False)
    changes = report.largest_first()
    sparse = any(c.sparsity is not None and max(c.sparsity) > 0 for c in changes)  # a pruned or sparse model
    columns = ["tensor", "shape", "relative", "L2", "mean|Δ|", "max|Δ|", "cosine", "changed", "from init", "units moved", "NaN/Inf"]
    for column in [*columns, "sparsity"] if sparse else columns:
        table.add_column(column, justify="left" if column in ("tensor", "shape") else "right")
    for change in changes[:top]:
        d = change.delta
        neurons = change.neurons(1, report.tolerance)
        moved = f"{neurons['units'] - neurons['unmoved']}/{neurons['units']}" if neurons else "-"
        bad = d.nan_a + d.nan_b + d.inf_a + d.inf_b
        table.add_row(
            change.name,
            "×".join(str(s) for s in change.shape) or "scalar",
            _num(d.relative),
            _num(d.l2),
            _num(d.mean_abs),
            _num(d.max_abs),
            f"{d.cosine:.6f}",
            f"{100 * d.changed_fraction:.1f}%",
            "-" if change.from_init_l2 is None else _num(change.from_init_l2),
            moved,
            f"[red]{bad}[/red]" if bad else "0",
            *([_sparsity(change.sparsity)] if sparse else []),
        )
    out.print(table)
    if len(changes) > top:
        out.print(f"… {len(changes) - top} more tensor(s) (--top N, or --json for all)")
    total = report.total()
    out.print(f"total: L2 {_num(total['l2'])}, relative {_num(total['relative'])}, changed {100 * total['changed_fraction']:.1f}% of {total['numel']:,} elements")
    for label, names in (("added", report.added), ("removed", report.removed)):
        if names:
            out.print(f"{label}: {', '.join(names)}")
    for item in report.shape_changed:
        out.print(f"shape changed: {item['name']} {item['a']} → {item['b']}")


def _sparsity(sparsity: tuple[float, float] | None) -> str:
    """The fraction of zeros before → after, e.g. ``0% → 50%``."""
    return "-" if sparsity is None else f"{100 * sparsity[0]:.0f}% → {100 * sparsity[1]:.0f}%"


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(encode_number(value))


def plot_command(
    run: Annotated[str, typer.Argument(help="A run id, an unambiguous prefix, or latest.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The folder the PNG files are written to.")],
    store: StoreOption = None,
) -> None:
    """PNG plots of a run: learning curves, weight change over time, heatmaps, update ratios."""
    with cli_errors():
        from unitrack.weights.plots import plot_run

        written = plot_run(open_store(store), run, out)
        for path in written:
            typer.echo(str(path))
        if not written:
            typer.echo("nothing to plot: the run has no metrics, snapshots or checkpoints", err=True)


def export_weights_command(
    ref: Annotated[str, typer.Argument(help="A run (RUN, RUN@best, RUN@STEP, RUN@NAME), a checkpoint folder (sharded too), a weights file, or mlflow:RUN_ID.")],
    to: Annotated[Path, typer.Option("--to", help="The .safetensors file to write.")],
    store: StoreOption = None,
) -> None:
    """Write a model's whole state dict (a sharded checkpoint gathered and verified) as one .safetensors file."""
    with cli_errors():
        from unitrack.weights.export import export_safetensors
        from unitrack.weights.refs import open_weights

        if to.suffix != ".safetensors":
            raise ValueError(f"--to {to}: the file must end in .safetensors")
        source = open_weights(open_store(store, must_exist=False), ref)
        count = export_safetensors(source, to)
        typer.echo(f"wrote {count} tensor(s) of {source.label} to {to}")

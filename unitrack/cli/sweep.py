"""``unitrack explain --sweep EXPERIMENT``: which params of a sweep's runs explain its metric."""

from __future__ import annotations

from typing import Any

_TOP = 3  # params shown with the metric against them
_BAR = 30  # characters of the widest bar


def sweep_command(experiment: str | None, metric: str | None, store: str | None, settings: Any, as_json: bool, given: list[str]) -> None:
    """Rank ``experiment``'s params; refuse a half-given pair of runs or runs given with --sweep."""
    if experiment is None or given:
        what = "give two runs (explain A B) or --sweep EXPERIMENT" if experiment is None else "--sweep takes no runs"
        raise ValueError(f"explain: {what}")
    from unitrack.analysis.sweep import explain_sweep
    from unitrack.cli.common import open_store, print_json

    result = explain_sweep(experiment, metric, store=open_store(store), settings=settings)
    print_json(result.to_dict()) if as_json else print_sweep(result)


def _bar(share: float, widest: float) -> str:
    return "█" * max(1 if share >= 0.0005 else 0, round(_BAR * share / widest)) if widest > 0 else ""


def print_sweep(result: Any) -> None:
    from rich.markup import escape

    from unitrack.cli.common import console

    out = console()
    subject = f"experiment {result.experiment}" if result.experiment else "these runs"
    out.print(f"[bold]{escape(subject)}[/bold]: {result.runs} runs, {escape(result.metric)} ({result.value} per run)")
    out.print(f"method: {result.method}", markup=False, style="dim", soft_wrap=True)
    name_width = max([len(p.key) for p in result.params] + [len("unexplained")])
    widest = max([p.importance for p in result.params] + [result.residual])
    for param in result.params:
        out.print(f"  {param.key:<{name_width}}  {param.importance:6.1%}  {_bar(param.importance, widest)}", markup=False)
    out.print(f"  {'unexplained':<{name_width}}  {result.residual:6.1%}  {_bar(result.residual, widest)}", markup=False, style="dim")
    for param in [p for p in result.params if p.importance > 0][:_TOP]:
        out.print(f"[bold]{escape(result.metric)} against {escape(param.key)}[/bold] [dim]({param.scale})[/dim]")
        low = min(level.low for level in param.levels)
        high = max(level.high for level in param.levels)
        label_width = max(len(level.label) for level in param.levels)
        for level in param.levels:
            span = (level.mean - low) / (high - low) if high > low else 1.0
            out.print(
                f"  {level.label:>{label_width}}  {level.runs:3d} runs  mean {level.mean:.4g}  "
                f"[{level.low:.4g} .. {level.high:.4g}]  {'▇' * max(1, round(20 * span))}",
                markup=False,
            )
    if result.bookkeeping:
        listed = ", ".join(f"{e['key']} ({e['reason']})" for e in result.bookkeeping)
        out.print(f"not ranked (bookkeeping): {listed}", markup=False)
    if result.constant:
        out.print(f"the same in every run: {', '.join(result.constant)}", markup=False, style="dim")
    if result.skipped:
        out.print(f"left out: {len(result.skipped)} run(s) without a finite {result.metric}", markup=False, style="dim")

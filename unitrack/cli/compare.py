"""``compare`` and ``explain``: two runs side by side, and why their results differ."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from unitrack.cli.common import JsonOption, StoreOption, cli_errors, import_numpy_one_blas_thread

RunA = Annotated[str, typer.Argument(help="Run A (before): an id, a prefix, latest~N, or a backend reference.")]
RunB = Annotated[str, typer.Argument(help="Run B (after).")]
OptionalRunA = Annotated[str | None, typer.Argument(help="Run A (before): an id, a prefix, latest~N, or a backend reference.")]
OptionalRunB = Annotated[str | None, typer.Argument(help="Run B (after).")]
ConfigOption = Annotated[
    str | None, typer.Option("--config", "-c", help="A unitrack config file (its `analysis` section).")
]
_SOURCE_LINES = 40


def _settings(config: str | None) -> Any:
    from unitrack.analysis_settings import analysis_settings

    return analysis_settings(config)


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_command(
        run_a: RunA, run_b: RunB, store: StoreOption = None, config: ConfigOption = None, as_json: JsonOption = False
    ) -> None:
        """Two runs side by side: config, metrics, model and its code, environment, git, system, weights."""
        with cli_errors():
            import_numpy_one_blas_thread()
            from unitrack.analysis import gather_evidence
            from unitrack.cli.common import open_store, print_json

            evidence = gather_evidence(open_store(store), run_a, run_b, _settings(config))
            print_json(evidence) if as_json else print_comparison(evidence)

    @app.command("explain")
    def explain_command(
        run_a: OptionalRunA = None,
        run_b: OptionalRunB = None,
        sweep: Annotated[
            str | None, typer.Option("--sweep", help="Rank the params of every run of this experiment instead.")
        ] = None,
        metric: Annotated[str | None, typer.Option("--metric", help="--sweep: the metric to explain.")] = None,
        store: StoreOption = None,
        config: ConfigOption = None,
        provider: Annotated[
            str | None, typer.Option("--provider", help="rules (offline) or anthropic; default: the config's.")
        ] = None,
        model: Annotated[str | None, typer.Option("--model", help="The LLM model name.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Why performance changed from A to B: likely causes ranked, each with its evidence, and what to try next.
        With --sweep EXPERIMENT: which params of its runs explain the metric's variation, and how."""
        with cli_errors():
            import_numpy_one_blas_thread()
            if sweep is not None or run_a is None or run_b is None:
                from unitrack.cli.sweep import sweep_command

                sweep_command(sweep, metric, store, _settings(config), as_json, given=[r for r in (run_a, run_b) if r])
                return
            from unitrack.analysis import gather_evidence
            from unitrack.analysis.explain import explain
            from unitrack.cli.common import open_store, print_json

            settings = _settings(config)
            evidence = gather_evidence(open_store(store), run_a, run_b, settings)
            explanation = explain(evidence, settings, provider, model)
            if explanation.notice:
                typer.echo(f"note: {explanation.notice}", err=True)
            print_json(explanation.to_dict()) if as_json else print_explanation(explanation)


def _fmt(value: Any) -> str:
    from unitrack.cli.common import fmt_value

    return fmt_value(value)


def _table(columns: tuple[str, ...]) -> Any:
    from rich.table import Table

    table = Table(box=None, header_style="dim", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _show(out: Any, title: str, table: Any) -> None:
    """The title on its own line: a rich table title would wrap to the table's width."""
    from rich.text import Text

    out.print(Text(title, style="bold"))
    out.print(table)


def _change(entry: dict[str, Any]) -> str:
    parts = []
    if entry["abs_change"] is not None:
        parts.append(f"{entry['abs_change']:+.4g}")
    if entry["rel_change"] is not None:
        parts.append(f"({entry['rel_change']:+.1%})")
    return " ".join(parts) or "-"


def print_comparison(evidence: dict[str, Any]) -> None:
    from unitrack.cli.common import console, fmt_duration

    out = console()
    a, b = evidence["runs"]["a"], evidence["runs"]["b"]
    for side, run in (("A", a), ("B", b)):
        commit = (run.get("git_commit") or "-")[:8]
        out.print(f"[bold]{side}[/bold] {run['run_id']}  {run.get('name') or ''}  {run.get('status')}  git {commit}  {run.get('message') or ''}")

    config = evidence["config"]
    if config["changed"] or config["added"] or config["removed"]:
        table = _table(("key", "A", "B", "change"))
        for c in config["changed"]:
            table.add_row(c["key"], _fmt(c["a"]), _fmt(c["b"]), f"×{c['ratio']:.3g}" if c["ratio"] else "changed")
        for c in config["added"]:
            table.add_row(c["key"], "-", _fmt(c["value"]), "added")
        for c in config["removed"]:
            table.add_row(c["key"], _fmt(c["value"]), "-", "removed")
        _show(out, "config (differences)", table)
    else:
        out.print("[dim]config: no differences[/dim]")
    if config.get("bookkeeping"):
        listed = ", ".join(
            f"{e['key']} {_fmt(e['a'])} → {_fmt(e['b'])}" if e["change"] == "changed" else f"{e['key']} {e['change']}"
            for e in config["bookkeeping"]
        )
        out.print(f"bookkeeping (never causes): {listed}", markup=False, style="dim")

    if evidence["metrics"]:
        table = _table(("metric", "A last", "B last", "change", "A best", "B best", "same step", "winner"))
        for m in evidence["metrics"]:
            same = m["same_step"]
            at = f"@{same['step']}: {_fmt(same['a'])} vs {_fmt(same['b'])}" if same else "-"
            table.add_row(
                m["key"], _fmt(m["a"]["last"]), _fmt(m["b"]["last"]), _change(m), _fmt(m["a"]["best"]),
                _fmt(m["b"]["best"]), at, {"a": "A", "b": "B"}.get(m["winner"] or "", m["winner"] or "-"),
            )  # fmt: skip
        _show(out, "metrics", table)

    _print_model(out, evidence["model"])

    facts = _table(("fact", "A", "B"))
    for key, pair in evidence["environment"]["facts"].items():
        if not pair["same"]:
            facts.add_row(key, _fmt(pair["a"]), _fmt(pair["b"]))
    packages = evidence["environment"]["packages"]
    for p in packages["changed"][:10]:
        facts.add_row(f"package {p['name']}", p["a"], p["b"])
    if len(packages["changed"]) > 10 or packages["added"] or packages["removed"]:
        facts.add_row("packages", f"{len(packages['removed'])} only here", f"{len(packages['added'])} only here")
    for key, pair in evidence["git"].items():
        if isinstance(pair, dict) and not pair["same"]:
            facts.add_row(f"git {key}", _fmt(pair["a"]), _fmt(pair["b"]))
    system = evidence["system"]
    duration = system["duration_s"]
    facts.add_row("duration", fmt_duration(duration["a"]), fmt_duration(duration["b"]))
    for key in ("peak_memory_mb", "gpu_utilization_percent", "gpu_memory_mb", "exit_code"):
        pair = system[key]
        if pair["a"] is not None or pair["b"] is not None:
            facts.add_row(key, _fmt(pair["a"]), _fmt(pair["b"]))
    _show(out, "environment, git, system (differences)", facts)

    weights = evidence.get("weights")
    if weights and weights.get("layers"):
        table = _table(("layer", "shape", "relative", "cosine", "changed"))
        for layer in weights["layers"][:8]:
            table.add_row(
                layer["name"], "×".join(map(str, layer["shape"])), _fmt(layer["relative"]), _fmt(layer["cosine"]),
                f"{layer['changed_fraction']:.0%}",
            )  # fmt: skip
        _show(out, f"weights ({weights['source_a']} → {weights['source_b']})", table)


def _print_model(out: Any, model: dict[str, Any]) -> None:
    from rich.text import Text

    if not any(model.get("recorded", {}).values()):
        out.print("[dim]model: not recorded (call tracker.watch(model, ...))[/dim]")
        return
    table = _table(("fact", "A", "B", "change"))
    params = model.get("parameters") or {}
    if params:
        table.add_row("parameters", _fmt(params["a"]), _fmt(params["b"]), f"×{params['ratio']:.3g}" if params.get("ratio") else "")
    if model.get("class"):
        table.add_row("class", _fmt(model["class"]["a"]), _fmt(model["class"]["b"]), "" if model["class"]["same"] else "changed")
    table.add_row("architecture", "", "", "changed" if (model.get("architecture") or {}).get("changed") else "same")
    for part in ("optimizer", "scheduler", "loss", "data"):
        diff = model.get(part) or {}
        for c in diff.get("changed", []):
            table.add_row(f"{part}.{c['key']}", _fmt(c["a"]), _fmt(c["b"]), "changed")
        for c in diff.get("added", []):
            table.add_row(f"{part}.{c['key']}", "-", _fmt(c["value"]), "added")
        for c in diff.get("removed", []):
            table.add_row(f"{part}.{c['key']}", _fmt(c["value"]), "-", "removed")
    _show(out, "model", table)
    arch = model.get("architecture") or {}
    entries = ([arch] if arch.get("changed") else []) + model.get("classes", []) + model.get("functions", [])
    for entry in entries:
        out.print(f"[bold]{entry['name']}[/bold] [dim]{entry['status']}[/dim]")
        for line in entry["diff"][:_SOURCE_LINES]:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim" if line.startswith("@@") else ""
            out.print(Text(line, style=style))
        if len(entry["diff"]) > _SOURCE_LINES:
            out.print(f"[dim]... {len(entry['diff']) - _SOURCE_LINES} more lines (--json has all)[/dim]")


def print_explanation(explanation: Any) -> None:
    from rich.markup import escape

    from unitrack.cli.common import console

    out = console()
    source = explanation.provider + (f" ({explanation.model})" if explanation.model else "")
    out.print(f"[bold]{escape(explanation.headline)}[/bold]  [dim]explained by {source}[/dim]")
    if not explanation.causes:
        out.print("no likely cause found in the recorded evidence")
    noise = explanation.noise
    if noise:
        verdict = "within" if noise["within"] else "beyond"
        out.print(f"noise: {noise['metric']} band ±{noise['band']:.4g}, the difference is {verdict} it", markup=False)
    for rank, cause in enumerate(explanation.causes, start=1):
        out.print(f"{rank}. [bold]{escape(cause.title)}[/bold] [dim](confidence {cause.score:.2f})[/dim]")
        for fact in cause.evidence:
            out.print(f"     - {fact}", markup=False, soft_wrap=True)
    if explanation.bookkeeping:
        listed = ", ".join(f"{e['key']} ({e['reason']})" for e in explanation.bookkeeping)
        out.print(f"not causes (bookkeeping): {listed}", markup=False, soft_wrap=True)
    for dropped in explanation.dropped:
        out.print(f"dropped: {dropped['title']} ({dropped['reason']})", markup=False)
    if explanation.next_steps:
        out.print("[bold]what to try next[/bold]")
        for step in explanation.next_steps:
            out.print(f"  * {step}", markup=False)

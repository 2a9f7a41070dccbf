"""``unitrack ui``: the local web dashboard (unitrack/ui/, docs/ui.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from unitrack.cli.common import StoreOption, cli_errors, open_store


def ui_command(
    store: StoreOption = None,
    host: Annotated[str, typer.Option("--host", help="The address to listen on; another than loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="The port; 0 picks a free one (printed).")] = 0,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="UNITRACK_UI_TOKEN", help="Every API call then needs Authorization: Bearer TOKEN."),
    ] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
) -> None:
    """Serve the dashboard: runs, curves, comparisons, explanations, weights, notes. Prints its URL."""
    with cli_errors():
        try:
            from unitrack.ui.serve import check_binding, serve
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(f"unitrack ui needs {exc.name}: pip install 'unitrack[ui]'") from None

        check_binding(host, token)  # before anything else: a refused address is the first thing to hear
        serve(open_store(store).root, host=host, port=port, token=token, open_browser=not no_browser)


def register(app: typer.Typer) -> None:
    app.command("ui")(ui_command)

"""``unitrack ui``: bind, print the URL the moment the server accepts connections, open the
browser, and stop cleanly on Ctrl-C or SIGTERM.

The socket is bound here, before uvicorn starts, so that port 0 (or none) gives a free port
whose real number is printed, and so that a port already taken fails at once with a clear line.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any

import uvicorn

from unitrack.errors import UnitrackError
from unitrack.ui.guard import is_loopback

GRACEFUL_S = 2


class UiError(UnitrackError, ValueError):
    """The dashboard cannot start as asked; the message says why."""


def check_binding(host: str, token: str | None) -> None:
    """Refuse to expose the dashboard beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise UiError(
            f"refusing to serve on {host}: that address is reachable from other machines, and the dashboard"
            " shows every run of the store. Give --token T (every request then needs it), or keep the default 127.0.0.1"
        )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UiError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def url_of(host: str, port: int) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The ``Host`` headers a loopback server answers (DNS-rebinding protection); None elsewhere."""
    if not is_loopback(host):
        return None
    names = {url_of(host, port)[7:-1], f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"}
    return names


def serve(store: Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None, open_browser: bool = True) -> None:
    """Serve the dashboard of ``store`` until interrupted."""
    from unitrack.ui.app import Dashboard

    check_binding(host, token)
    sock = _bind(host, port)
    real_port = sock.getsockname()[1]
    url = url_of(host, real_port)
    dashboard = Dashboard(store, token=token, allowed_hosts=allowed_hosts(host, real_port))
    app = dashboard.build()
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=GRACEFUL_S,
        server_header=False,
    )  # fmt: skip
    server = _Server(config, dashboard.stopping)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.01)
        print(url, flush=True)
        opened = url + (f"#token={token}" if token else "")
        if token:
            print(f"open {opened} (the page keeps the token; every API call needs Authorization: Bearer)", flush=True)
        print("Ctrl-C stops the dashboard", file=sys.stderr, flush=True)
        if open_browser:
            threading.Thread(target=webbrowser.open, args=(opened,), daemon=True).start()

    async def main() -> None:
        announcer = asyncio.create_task(announce())
        try:
            await server.serve(sockets=[sock])
        finally:
            announcer.cancel()

    try:
        asyncio.run(main())
    finally:
        sock.close()
        if server.interrupted:
            print("dashboard stopped", file=sys.stderr, flush=True)


class _Server(uvicorn.Server):
    """uvicorn's server, which also tells the live streams to end when a signal arrives (they
    would otherwise hold the graceful shutdown open)."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping
        self.interrupted = False

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.stopping.set()
        self.interrupted = True
        super().handle_exit(sig, frame)
        # uvicorn re-raises a captured signal once it has shut down; the stop asked for is done, so exit 0
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()

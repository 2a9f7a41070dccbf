"""The dashboard as an ASGI application: one page, its own assets, the JSON API, the guard.

The page and its assets are read from the package into memory once, at start: a request can
only name one of those files (no path is ever joined with user input on the static side), and
any other path is a 404 — there is no catch-all page.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unitrack.ui.api import Api
from unitrack.ui.guard import AccessLog, Guard
from unitrack.ui.source import RunSource

STATIC = Path(__file__).parent / "static"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}
_LICENCE_NAMES = ("LICENSE", "SOURCE")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def load_assets() -> dict[str, tuple[bytes, str]]:
    """Every file under ``static/`` (but the page itself): ``{relative path: (bytes, content type)}``."""
    assets = {}
    for path in sorted(STATIC.rglob("*")):
        if not path.is_file() or path.name == "index.html":
            continue
        relative = path.relative_to(STATIC).as_posix()
        kind = _TYPES.get(path.suffix, "text/plain; charset=utf-8" if path.name in _LICENCE_NAMES else None)
        if kind is not None:
            assets[relative] = (path.read_bytes(), kind)
    return assets


@dataclass
class Dashboard:
    """What ``unitrack ui`` serves, and the flag that ends its live streams on shutdown."""

    store: Path
    token: str | None = None
    allowed_hosts: set[str] | None = None
    access_log: bool = True
    stopping: threading.Event = field(default_factory=threading.Event)

    def build(self) -> Guard:
        from unitrack.store.runs import RunStore

        store = RunStore(self.store)
        write_token = self.token or secrets.token_urlsafe(24)
        # the page carries the write secret only when no user token exists: with --token, the page
        # takes the user's token from the URL it was opened with, and a page fetched without it learns nothing
        page = (STATIC / "index.html").read_text(encoding="utf-8")
        page = page.replace("{{WRITE_TOKEN}}", "" if self.token else write_token)
        page = page.replace("{{TOKEN_REQUIRED}}", "1" if self.token else "0")
        page_bytes = page.encode()
        assets = load_assets()

        async def index(request: Request) -> Response:
            return Response(page_bytes, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"}, media_type="text/html")

        async def asset(request: Request) -> Response:
            found = assets.get(request.path_params["name"])
            if found is None:
                return Response("Not Found", 404, media_type="text/plain")
            return Response(found[0], headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}, media_type=found[1])

        api = Api(RunSource(store), self.stopping)
        routes = [Route("/", index), Route("/static/{name:path}", asset), *api.routes()]
        app = Starlette(routes=routes)
        log = AccessLog(store.layout.ui_access) if self.access_log else None
        return Guard(app, token=self.token, write_token=write_token, log=log, allowed_hosts=self.allowed_hosts)

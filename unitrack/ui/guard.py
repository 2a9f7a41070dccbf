"""The dashboard's gate: who may call the API, from which page, and a record of every request.

- ``Host`` must name the address the server was bound to (a page on another site that re-points
  its DNS name at 127.0.0.1 — DNS rebinding — gets 403).
- With a token, every ``/api/`` request needs ``Authorization: Bearer TOKEN`` (401 otherwise).
- A write (any method but GET/HEAD) needs the write token as a Bearer credential — the user's
  token, or without one a per-process secret that only the page served from this origin
  carries — and an ``Origin`` equal to the server's own (403 otherwise).
- Each request is appended to ``<store>/ui-access.jsonl``: when, from where, what, the answer.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_READS = ("GET", "HEAD")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AccessLog:
    """Append-only JSON lines, one per request; a failure to write never fails the request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle: Any = None

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            try:
                if self._handle is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._handle = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - open for the server's life, closed by close()
                self._handle.write(line)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization") or ""
    scheme, _, credential = value.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """ASGI middleware enforcing the rules above around ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        write_token: str,
        log: AccessLog | None,
        allowed_hosts: set[str] | None = None,
    ) -> None:
        self.app = app
        self.token = token
        self.write_token = write_token
        self.log = log
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.time()
        status = {"code": 0}

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        refusal = self._refusal(scope)
        try:
            if refusal is not None:
                await _plain(record, *refusal)
            else:
                await self.app(scope, receive, record)
        finally:
            if self.log is not None:
                client = scope.get("client") or ("?", 0)
                query = bytes(scope.get("query_string") or b"").decode("latin-1")
                self.log.write(
                    {
                        "time": round(started, 3),
                        "client": f"{client[0]}:{client[1]}",
                        "authenticated": self.token is not None and _same(_bearer(scope), self.token),
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "query": query or None,
                        "status": status["code"],
                        "ms": round(1000 * (time.time() - started), 2),
                        "agent": (_header(scope, b"user-agent") or "")[:200] or None,
                    }
                )

    def _refusal(self, scope: Scope) -> tuple[int, str, dict[str, str]] | None:
        host = _header(scope, b"host")
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return 403, f"host {host!r} is not this server's address", {}
        path = str(scope.get("path") or "")
        if not path.startswith("/api/"):
            return None
        if self.token is not None and not _same(_bearer(scope), self.token):
            return 401, "this dashboard needs its token: Authorization: Bearer TOKEN", {"www-authenticate": "Bearer"}
        if scope.get("method") not in _READS:
            if not _same(_bearer(scope), self.write_token):
                return 403, "a write needs the page's token", {}
            origin = _header(scope, b"origin")
            if host is None or origin != f"{scope.get('scheme', 'http')}://{host}":
                return 403, "a write must come from this dashboard's own page (same origin)", {}
            fetch_site = _header(scope, b"sec-fetch-site")
            if fetch_site is not None and fetch_site != "same-origin":
                return 403, "a write must come from this dashboard's own page (same origin)", {}
        return None


async def _plain(send: Send, code: int, text: str, headers: dict[str, str]) -> None:
    body = json.dumps({"error": text}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": code, "headers": raw})
    await send({"type": "http.response.body", "body": body})

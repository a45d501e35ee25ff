"""Browser-facing defences, as one ASGI middleware: which sites and host names a browser may use us from,
and the response headers that keep our pages out of other sites' frames.

A server on a LAN without an API key is reachable by any web page its users open: the page can post
uploads and open live streams to it, and with DNS rebinding (a name the attacker controls, re-pointed
at the LAN address) even read the answers. So a request that comes from a browser (it carries
``Origin`` or ``Sec-Fetch-Mode``, which browsers add and scripts cannot remove) must

* come from our own origin (scheme-less host and port equal to ``Host``) or an allowed one, and
* name us by an IP address, ``localhost``, this machine's name (or ``NAME.local``), or an allowed host.

Programs (curl, the OpenAI SDK, Vosk clients, Home Assistant) send neither header and are not affected;
the API key, when set, still applies to them.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import FAILURES, Forbidden, error_body
from .metrics import Metrics
from .settings import Settings

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),  # an answer is never sniffed into HTML or script
    (b"content-security-policy", b"frame-ancestors 'none'"),  # no other site may frame our pages
    (b"x-frame-options", b"DENY"),  # the same, for browsers without CSP level 2
    (b"referrer-policy", b"no-referrer"),
]
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _split_host(value: str, default_port: int | None) -> tuple[str, int | None]:
    """'Host: [::1]:8000' -> ('::1', 8000); without a port, ``default_port``."""
    parts = urlsplit("//" + value.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port if port is not None else default_port


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class BrowserGuard:
    """``settings`` is called once, at the first request, so that it sees the app's settings override."""

    def __init__(self, app: ASGIApp, settings: Callable[[], Settings], metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.origins: frozenset[str] | None = None  # both read from the settings at the first browser request
        self.hosts: frozenset[str] = frozenset()
        me = socket.gethostname().lower()
        self.own_names = {"localhost", me, f"{me}.local"}

    def refusal(self, headers: Headers) -> str | None:
        """Why this request may not be served, or None."""
        origin = headers.get("origin")
        if origin is None and "sec-fetch-mode" not in headers:
            return None  # not a browser
        if self.origins is None:
            settings = self.settings()
            self.origins, self.hosts = settings.origins(), settings.hosts()
        host_header = headers.get("host", "")
        host, _ = _split_host(host_header, None)
        known = _is_ip(host) or host in self.own_names or host.endswith(".localhost") or host in self.hosts
        if not known and "*" not in self.hosts:
            return (f"browsers may not reach this server by the name {host!r}: use its IP address, or add the "
                    f"name to EDGESCRIBE_ALLOWED_HOSTS")
        if origin is None or "*" in self.origins or origin.lower().rstrip("/") in self.origins:
            return None
        parts = urlsplit(origin)
        scheme_port = DEFAULT_PORTS.get(parts.scheme.lower())
        if parts.hostname is None or scheme_port is None:
            return f"requests from the web origin {origin!r} are not allowed (EDGESCRIBE_ALLOWED_ORIGINS)"
        try:
            origin_port = parts.port or scheme_port
        except ValueError:
            return f"the Origin header {origin!r} is malformed"
        if (parts.hostname.lower(), origin_port) != _split_host(host_header, scheme_port):
            return (f"requests from the web origin {origin!r} are not allowed: open this server's own page, or "
                    f"add the origin to EDGESCRIBE_ALLOWED_ORIGINS")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(Headers(scope=scope))
        if reason is not None:
            failure = FAILURES[Forbidden]
            self.metrics.errors.labels(kind=failure.kind).inc()
            if scope["type"] == "websocket":
                # Closing before accepting makes uvicorn answer the handshake with HTTP 403.
                await send({"type": "websocket.close", "code": failure.close_code, "reason": failure.kind})
                return
            response = JSONResponse(error_body(Forbidden(reason), failure), status_code=failure.status)
            await response(scope, receive, self._with_headers(send))
            return
        if scope["type"] == "http":
            send = self._with_headers(send)
        await self.app(scope, receive, send)

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        return sending

"""Running the app on uvicorn, with the connection limits uvicorn lacks and a shutdown that finishes streams.

uvicorn bounds neither how long a client may take to send its request headers (its keep-alive timer
is armed only after a response) nor how many connections it holds open, so idle sockets that never
finish a request pile up until the process runs out of file descriptors. ``GuardedH11Protocol``
adds both: a header deadline (``header_timeout``) and a connection cap (``max_connections``), and
logs when they act. The header size cap is h11's own limit (``max_header_bytes``); uvicorn's
default parser, httptools, has none, which is why the h11 parser is used.

On SIGTERM uvicorn would close live streams at once with 1012 and no final text; ``Server`` first
lets each open stream send the final result of its open segment and close (1001), then shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import Settings

log = logging.getLogger(__name__)
LOG_EVERY = 10.0  # seconds between two log lines about the same kind of refused connection


class _Notes:
    """Rate-limited warnings: a flood of bad connections must not become a flood of log lines."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.quiet: dict[str, int] = {}

    def warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last.get(kind, -LOG_EVERY) < LOG_EVERY:
            self.quiet[kind] = self.quiet.get(kind, 0) + 1
            return
        more = self.quiet.pop(kind, 0)
        self.last[kind] = now
        log.warning(message + (f" ({more} more since the last report)" if more else ""), *args)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request's headers and a cap on open connections."""

    max_connections: ClassVar[int] = 256
    header_timeout: ClassVar[float] = 10.0
    notes: ClassVar[_Notes] = _Notes()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.notes.warn("cap", "refused a connection from %s: %d connections are open "
                            "(EDGESCRIBE_MAX_CONNECTIONS)", _peer(self.client), self.max_connections)
            transport.close()
            return
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _watch_headers(self) -> None:
        """Arm the deadline while a request's headers are awaited; disarm it once they are in."""
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if not waiting:
            self._stop_header_timer()
        elif self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            # (Between two requests of a keep-alive connection uvicorn's own keep-alive timer runs; this
            # one is armed when the first byte of the next request arrives, or at connect.)
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.notes.warn("headers", "closed a connection from %s: no complete request headers within %g s "
                            "(EDGESCRIBE_HEADER_TIMEOUT)", _peer(self.client), self.header_timeout)
            self.transport.close()

def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "an unknown peer"


class Server(uvicorn.Server):
    """uvicorn's server, whose graceful shutdown first lets open streams finish (final text, close 1001)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.app, self.drain_seconds = app, drain_seconds

    async def shutdown(self, sockets=None) -> None:
        engine = getattr(self.app.state, "engine", None)
        if engine is not None:
            for server in self.servers:
                server.close()  # no new connections while the open streams finish
            engine.draining.set()
            deadline = time.monotonic() + self.drain_seconds
            while engine.streams.used and time.monotonic() < deadline and not self.force_exit:
                await asyncio.sleep(0.05)
        await super().shutdown(sockets)


def make_server(app: FastAPI, settings: Settings, log_level: str = "info") -> Server:
    """The configured server for ``app``: ``make_server(...).run()`` serves until SIGTERM or Ctrl-C."""
    protocol = type("EdgeScribeH11Protocol", (GuardedH11Protocol,),
                    {"max_connections": settings.max_connections, "header_timeout": settings.header_timeout,
                     "notes": _Notes()})
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level.lower(),
                            http=protocol, h11_max_incomplete_event_size=settings.max_header_bytes,
                            timeout_graceful_shutdown=settings.shutdown_timeout,
                            ws_max_size=settings.max_message_bytes, access_log=False)
    return Server(config, app, settings.shutdown_timeout)

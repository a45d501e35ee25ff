"""One table from failures to HTTP status codes and WebSocket close codes, and the JSON body they carry.

The body has OpenAI's error shape, so OpenAI clients show the message as is::

    {"error": {"message": "...what to change...", "type": "bad_field", "param": "language", "code": "bad_field"}}

``code`` is a string, as OpenAI's is (or null there); ours repeats ``type``, which already names the
failure exactly where OpenAI's is a broad class such as "invalid_request_error".

WebSocket close codes are 4000 + the HTTP status of the same failure (4400, 4413, 4503, ...), the
convention for application codes in the 4000-4999 range; an unexpected error closes with 1011.
Before closing, the stream is sent the same JSON body, since a close reason is limited to 123 bytes.
A Wyoming connection (service/wyoming) is sent the message in an ``error`` event whose code is the kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, HTTPConnection
from starlette.websockets import WebSocketState

from model.audio import AudioDecodeError, AudioTooLong

from .metrics import Metrics

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A failure the client can fix. The message says how; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class BadField(ServiceError):
    pass


class Unauthorized(ServiceError):
    pass


class Forbidden(ServiceError):
    """A browser request from another site, or by a host name the server does not answer to."""


class NotFound(ServiceError):
    pass


class IdleTimeout(ServiceError):
    pass


class UploadTooLarge(ServiceError):
    pass


class Busy(ServiceError):
    """Every slot of a bounded resource is taken; the client should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClientGone(Exception):
    """The client went away before its answer was ready; its work was abandoned."""


@dataclass(frozen=True)
class Failure:
    status: int
    close_code: int
    kind: str  # the error "type" in the body and the label of edgescribe_errors_total


FAILURES: dict[type[BaseException], Failure] = {
    BadField: Failure(400, 4400, "bad_field"),
    Unauthorized: Failure(401, 4401, "unauthorized"),
    Forbidden: Failure(403, 4403, "forbidden"),
    NotFound: Failure(404, 4404, "not_found"),
    IdleTimeout: Failure(408, 4408, "idle_timeout"),
    UploadTooLarge: Failure(413, 4413, "upload_too_large"),
    AudioTooLong: Failure(413, 4413, "audio_too_long"),
    AudioDecodeError: Failure(415, 4415, "undecodable_audio"),
    # nginx's "client closed request": nobody reads it, but the logs and metrics say what happened.
    ClientGone: Failure(499, 1001, "client_disconnected"),
    ClientDisconnect: Failure(499, 1001, "client_disconnected"),
    Busy: Failure(503, 4503, "busy"),
}
INTERNAL = Failure(500, 1011, "internal")
INTERNAL_MESSAGE = "internal error; the server log has the details"


# Close codes a stream may end with that are worth a metric label of their own; clients choose theirs
# freely (any number 1000-4999), and each distinct label value would be a new time series.
_CLOSE_LABELS = frozenset({1000, 1001, 1005, 1006, 1011, 1012} | {f.close_code for f in FAILURES.values()})


def close_label(code: int) -> str:
    """The metric label for a stream's close code: the code itself if it is one we know, else 'other'."""
    return str(code) if code in _CLOSE_LABELS else "other"


def classify(exc: BaseException) -> Failure:
    for cls in type(exc).__mro__:
        if cls in FAILURES:
            return FAILURES[cls]
    return INTERNAL


def error_body(exc: BaseException, failure: Failure) -> dict:
    message = INTERNAL_MESSAGE if failure is INTERNAL else str(exc)
    return {"error": {"message": message, "type": failure.kind, "param": getattr(exc, "param", None),
                      "code": failure.kind}}


def _headers(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, Busy):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    return {}


def _count(request: HTTPConnection, failure: Failure) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(kind=failure.kind).inc()


def report(exc: BaseException, metrics: Metrics | None, where: str) -> Failure:
    """Classify a failure, log it with its stack if it is unexpected, and count it."""
    failure = classify(exc)
    if failure is INTERNAL:
        log.error("unexpected error on %s", where, exc_info=exc)
    if metrics is not None:
        metrics.errors.labels(kind=failure.kind).inc()
    return failure


def _report(conn: HTTPConnection, exc: BaseException) -> Failure:
    what = "stream" if conn.scope["type"] == "websocket" else conn.scope.get("method", "request")
    return report(exc, getattr(conn.app.state, "metrics", None), f"{what} {conn.url.path}")


def error_response(request: Request, exc: BaseException) -> JSONResponse:
    failure = _report(request, exc)
    return JSONResponse(error_body(exc, failure), status_code=failure.status, headers=_headers(exc))


def error_event(conn: HTTPConnection, exc: BaseException) -> dict:
    """The body for a failure after a response has begun (the last of a stream of events)."""
    return error_body(exc, _report(conn, exc))


async def send_within(sending: Awaitable[None], seconds: float) -> None:
    """Send (a reply, an event or a close), giving up on a client that has taken nothing for ``seconds``.

    A client that stops reading fills the socket buffers, and then a send waits for ever: the idle
    timeout watches only receives, and uvicorn's keep-alive pings queue behind the same full buffer,
    so without this bound such a client would hold its slot until the process ends.
    """
    try:
        await asyncio.wait_for(sending, timeout=seconds)
    except asyncio.TimeoutError:
        raise ClientGone(f"the client read no replies for {seconds:g} s") from None


async def close_websocket(ws: WebSocket, exc: BaseException) -> int:
    """Tell the stream what went wrong, as JSON, then close it with the table's code. Returns the code."""
    failure = _report(ws, exc)
    # A client that is gone (or stopped reading) would only make this send wait: just let the socket go.
    reachable = not isinstance(exc, ClientGone)
    if reachable and ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
        body = error_body(exc, failure)
        if isinstance(exc, Busy):
            body["error"]["retry_after"] = exc.retry_after
        try:
            await ws.send_json(body)
            await ws.close(failure.close_code, reason=failure.kind)
        except (RuntimeError, OSError):  # the client went away in the meantime: nothing left to tell
            pass
    return failure.close_code


def install(app: FastAPI) -> None:
    """Route every failure through the table above, including FastAPI's own 404/405/validation errors."""

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, exc)

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        _count(request, Failure(exc.status_code, 4000 + exc.status_code, kind))
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"nothing at {request.url.path}: the endpoints are listed at /docs"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "another method")
            message = f"{request.method} is not allowed on {request.url.path}: use {allowed}"
        body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return error_response(request, BadField(f"{param or 'request'}: {first.get('msg', 'invalid')}", param))

    for cls in FAILURES:
        app.add_exception_handler(cls, on_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_error)

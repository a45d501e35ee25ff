"""Server-sent events for POST /v1/audio/transcriptions with ``stream=true``, in OpenAI's shapes::

    data: {"type": "transcript.text.delta", "delta": "..."}     as each segment closes at a pause
    data: {"type": "transcript.text.done", "text": "..."}       once, at the end, with the whole text

The deltas join to the "done" text, which is the non-streamed answer's ``text``. The response begins
with its first event, so whatever fails before it (busy, a bad field, undecodable audio) is still an
ordinary JSON error with its status; a failure after it is sent as a last event ``{"error": {...}}``
(the body OpenAI's client raises as ``APIError``), and the stream ends there.

The response owns what the request held (its slot, its spooled upload) and lets it go when it ends,
however it ends: a client that hangs up or stops reading stops the decoding and frees its slot.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from model.recognize import Segment

from .errors import ClientGone, error_event, send_within


def event(data: dict) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def delta(text: str) -> dict:
    return {"type": "transcript.text.delta", "delta": text}


def done(text: str) -> dict:
    return {"type": "transcript.text.done", "text": text}


class TranscriptEvents(Response):
    """Streams ``segments`` as events. ``held`` is closed when the response ends, whatever ends it."""

    media_type = "text/event-stream"

    def __init__(self, segments: AsyncIterator[Segment], send_timeout: float,
                 held: contextlib.AsyncExitStack) -> None:
        self.segments, self.send_timeout, self.held = segments, send_timeout, held
        self.status_code = 200
        self.background = None
        # No caching, and no buffering by a proxy in front (nginx's X-Accel-Buffering): events go out as they come.
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.held:
            segment = await anext(self.segments, None)  # a failure here is still an ordinary error response
            texts: list[str] = []
            try:
                await self._send(send, {"type": "http.response.start", "status": self.status_code,
                                        "headers": self.raw_headers})
                while segment is not None:
                    if segment.text:
                        await self._event(send, delta(segment.text if not texts else " " + segment.text))
                        texts.append(segment.text)
                    segment = await anext(self.segments, None)
                last = done(" ".join(texts))
            except Exception as e:
                last = error_event(HTTPConnection(scope), e)  # logged and counted, as before a response
                if isinstance(e, ClientGone):
                    return  # nobody is reading: the work has stopped, and ``held`` lets the rest go
            await self._event(send, last)
            await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})

    async def _event(self, send: Send, data: dict) -> None:
        await self._send(send, {"type": "http.response.body", "body": event(data), "more_body": True})

    async def _send(self, send: Send, message: dict) -> None:
        await send_within(send(message), self.send_timeout)

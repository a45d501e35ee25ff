"""WebSocket /v1/stream: live transcription speaking Vosk-server's protocol, so Vosk clients work unchanged.

Client -> server:
  optional first text message  {"config": {"sample_rate": 16000, "words": true, "phrase_list": ["..."]}}
                               phrase_list restricts the output to those phrases (Vosk's grammar mode;
                               "[unk]" allows anything else); "hotwords": ["..."] (our extension) only
                               biases decoding toward its words
  binary messages              16-bit little-endian mono PCM at that rate (resampled here to the model's)
  text message                 {"eof": 1}
Server -> client, exactly one reply per audio message, as Vosk does (its clients read one per send):
  {"partial": "..."}                                                    while a phrase is open
  {"text": "...", "result": [{"word", "start", "end", "conf"}, ...]}    when a pause closes one
and at eof the final {"text": ...} for whatever is left, then the server closes (1000); when the server
shuts down, the same final text, then close 1001 (going away).
Times are seconds from the start of the stream. "result" is left out when the config says "words": false.
Failures send {"error": {...}} and close with the code from service/errors.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from model.audio import AudioTooLong
from model.recognize import Segment

from ..deps import EngineDep, SettingsDep, check_api_key
from ..errors import BadField, ClientGone, IdleTimeout, UploadTooLarge, close_label, close_websocket
from ..recognizer import Engine, Session
from ..settings import Settings

log = logging.getLogger(__name__)
router = APIRouter()

ENDPOINT = "/v1/stream"
DEFAULT_SAMPLE_RATE = 16000  # what the model wants; Vosk's own clients say so in their config anyway
SAMPLE_RATES = (8000, 192000)  # telephone audio up to studio rates; outside this a client is confused


@dataclass(frozen=True)
class StreamConfig:
    sample_rate: int = DEFAULT_SAMPLE_RATE
    words: bool = True  # vosk-server's default (VOSK_SHOW_WORDS)
    phrase_list: tuple[str, ...] = field(default_factory=tuple)  # a grammar, as in vosk-server
    hotwords: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, raw: object) -> StreamConfig:
        if not isinstance(raw, dict):
            raise BadField('config must be an object: {"config": {"sample_rate": 16000}}', "config")
        rate = raw.get("sample_rate", DEFAULT_SAMPLE_RATE)
        if isinstance(rate, float) and rate.is_integer():
            rate = int(rate)  # some clients send 16000.0
        if not isinstance(rate, int) or isinstance(rate, bool) or not SAMPLE_RATES[0] <= rate <= SAMPLE_RATES[1]:
            raise BadField(f"sample_rate must be a whole number of Hz from {SAMPLE_RATES[0]} to {SAMPLE_RATES[1]}, "
                           f"got {rate!r}", "sample_rate")
        words = raw.get("words", True)
        if not isinstance(words, bool):
            raise BadField(f"words must be true or false, got {words!r}", "words")
        lists = []
        for name in ("phrase_list", "hotwords"):
            items = raw.get(name, [])
            if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
                raise BadField(f"{name} must be a list of strings", name)
            lists.append(tuple(items))
        return cls(rate, words, *lists)


def result_message(segments: list[Segment], words: bool) -> dict:
    message: dict = {"text": " ".join(s.text for s in segments if s.text)}
    if words:
        message["result"] = [{"conf": w.confidence, "end": w.end, "start": w.start, "word": w.word}
                             for s in segments for w in s.words]
    return message


async def _receive(ws: WebSocket, deadline: float, draining: asyncio.Event) -> dict | None:
    """The next message, or None when the server starts shutting down; ``IdleTimeout`` at ``deadline``."""
    receiving = asyncio.ensure_future(ws.receive())
    stopping = asyncio.ensure_future(draining.wait())
    try:
        await asyncio.wait({receiving, stopping}, timeout=max(0.0, deadline - time.monotonic()),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not receiving.done():
            receiving.cancel()  # safe: uvicorn's receive is a queue read, so no message is lost
    if receiving.done() and not receiving.cancelled():
        message = receiving.result()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        return message
    if draining.is_set():
        return None
    raise IdleTimeout("no audio received for EDGESCRIBE_IDLE_TIMEOUT seconds: send audio more often or "
                      '{"eof": 1} to finish (other messages do not keep a stream open)')


def _check_pace(session: Session | None, started: float, settings: Settings) -> None:
    """Refuse a stream that sends audio far slower than real time, or more than one request may hold."""
    seconds = 0.0 if session is None else session.seconds
    if seconds > settings.max_audio_seconds:
        raise AudioTooLong(f"the stream has sent more than {settings.max_audio_seconds:g} s of audio, the most one "
                           f"stream may (EDGESCRIBE_MAX_AUDIO_SECONDS): open a new stream to go on")
    owed = settings.min_stream_realtime * (time.monotonic() - started - settings.idle_timeout)
    if owed > 0 and seconds < owed:
        raise IdleTimeout(f"the stream has sent {seconds:.1f} s of audio in {time.monotonic() - started:.0f} s, "
                          f"under the floor of {settings.min_stream_realtime:g} s per second "
                          f"(EDGESCRIBE_MIN_STREAM_REALTIME): send live audio as it is captured")


async def _bounded(sending: Awaitable[None], settings: Settings) -> None:
    """Send (a reply or the close), giving up on a client that has taken nothing for ``idle_timeout`` s.

    A client that stops reading fills the socket buffers, and then a send waits for ever: the idle
    timeout watches only receives, and uvicorn's keep-alive pings queue behind the same full buffer,
    so without this bound such a client would hold its stream slot until the process ends.
    """
    try:
        await asyncio.wait_for(sending, timeout=settings.idle_timeout)
    except asyncio.TimeoutError:
        raise ClientGone(f"the client read no replies for {settings.idle_timeout:g} s") from None


async def _finish(ws: WebSocket, session: Session | None, config: StreamConfig, settings: Settings,
                  code: int) -> None:
    segments = [] if session is None else await session.finish()
    await _bounded(ws.send_json(result_message(segments, config.words)), settings)
    await _bounded(ws.close(code), settings)


async def _serve(ws: WebSocket, engine: Engine, settings: Settings) -> Session | None:
    """Run one stream to its end; returns its session (None if no audio came) for the metrics.

    Only audio (and eof) keeps a stream alive: the idle deadline counts from the last audio message, so a
    client that repeats its config, or sends audio at a trickle, cannot hold a stream slot for ever.
    """
    config = StreamConfig()
    grammar = None
    session: Session | None = None
    started = last_audio = time.monotonic()
    while True:
        message = await _receive(ws, last_audio + settings.idle_timeout, engine.draining)
        if message is None:  # graceful shutdown: the open segment's final text, then "going away"
            await _finish(ws, session, config, settings, 1001)
            return session
        _check_pace(session, started, settings)
        data: bytes | None = message.get("bytes")
        if data is None:
            text = message.get("text") or ""
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
                obj = None
            if not isinstance(obj, dict):
                raise BadField('text messages must be JSON: {"config": {...}} first, or {"eof": 1} to finish')
            if "config" in obj:
                if session is not None:
                    raise BadField("config must come before the first audio message", "config")
                config = StreamConfig.parse(obj["config"])
                grammar = engine.grammar(config.phrase_list)  # a bad phrase list fails here, not at first audio
                continue
            if "eof" in obj:
                await _finish(ws, session, config, settings, 1000)
                return session
            raise BadField('unknown message: send {"config": {...}}, binary PCM audio, or {"eof": 1}')
        if len(data) > settings.max_message_bytes:
            raise UploadTooLarge(f"a message of {len(data)} bytes is over the limit of {settings.max_message_bytes}: "
                                 f"send smaller chunks (0.1-0.5 s of audio each is typical)")
        last_audio = time.monotonic()
        if session is None:
            session = engine.session(config.sample_rate, engine.hotwords(config.hotwords), grammar)
        segments, partial = await session.accept(data)
        reply = result_message(segments, config.words) if segments else {"partial": partial}
        await _bounded(ws.send_json(reply), settings)


@router.websocket(ENDPOINT)
async def stream(ws: WebSocket, engine: EngineDep, settings: SettingsDep) -> None:
    await ws.accept()
    code = 1000
    session: Session | None = None
    try:
        check_api_key(ws, settings)
        with engine.streams.hold():
            session = await _serve(ws, engine, settings)
    except WebSocketDisconnect as e:
        code = e.code  # the client left; its session and slot are freed on the way out
        log.debug("stream closed by the client (%s)", code)
    except Exception as e:
        code = await close_websocket(ws, e)
    finally:
        engine.metrics.requests.labels(endpoint=ENDPOINT, status=close_label(code)).inc()
    if session is not None:
        engine.metrics.observe(ENDPOINT, session.seconds, session.processing)

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
and at eof the final {"text": ...} for whatever is left, then the server closes (1000).
Times are seconds from the start of the stream. "result" is left out when the config says "words": false.
Failures send {"error": {...}} and close with the code from service/errors.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from model.recognize import Segment

from ..deps import EngineDep, SettingsDep, check_api_key
from ..errors import BadField, ClientGone, IdleTimeout, UploadTooLarge, close_websocket
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


async def _receive(ws: WebSocket, settings: Settings) -> dict:
    try:
        message = await asyncio.wait_for(ws.receive(), timeout=settings.idle_timeout)
    except asyncio.TimeoutError:
        raise IdleTimeout(f"nothing received for {settings.idle_timeout:g} s: send audio more often or "
                          f'{{"eof": 1}} to finish (the server\'s limit is EDGESCRIBE_IDLE_TIMEOUT)') from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    return message


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


async def _serve(ws: WebSocket, engine: Engine, settings: Settings) -> Session | None:
    """Run one stream to its end; returns its session (None if no audio came) for the metrics."""
    config = StreamConfig()
    grammar = None
    session: Session | None = None
    while True:
        message = await _receive(ws, settings)
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
                segments = [] if session is None else await session.finish()
                await _bounded(ws.send_json(result_message(segments, config.words)), settings)
                await _bounded(ws.close(1000), settings)
                return session
            raise BadField('unknown message: send {"config": {...}}, binary PCM audio, or {"eof": 1}')
        if len(data) > settings.max_message_bytes:
            raise UploadTooLarge(f"a message of {len(data)} bytes is over the limit of {settings.max_message_bytes}: "
                                 f"send smaller chunks (0.1-0.5 s of audio each is typical)")
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
        engine.metrics.requests.labels(endpoint=ENDPOINT, status=str(code)).inc()
    if session is not None:
        engine.metrics.observe(ENDPOINT, session.seconds, session.processing)

"""WebSocket /v1/stream: live transcription speaking Vosk-server's protocol, so Vosk clients work unchanged.

Client -> server:
  optional first text message  {"config": {"sample_rate": 16000, "words": 1, "max_alternatives": 3,
                                           "phrase_list": ["..."]}}
                               words and max_alternatives as in vosk-server (words: any boolean or number;
                               max_alternatives: 0 = plain results, cut to EDGESCRIBE_MAX_ALTERNATIVES);
                               phrase_list restricts the output to those phrases (Vosk's grammar mode;
                               "[unk]" allows anything else); "hotwords": ["..."] (our extension) only
                               biases decoding toward its words; "grammar": "<sentence templates, YAML>"
                               (our extension, Home Assistant's format): only their sentences come out,
                               and finals carry "intent": {"name", "slots", "confidence"} (null: no match)
  binary messages              16-bit little-endian mono PCM at that rate (resampled here to the model's);
                               without a config, EDGESCRIBE_STREAM_SAMPLE_RATE (16000; vosk-server's is 8000)
  text message                 {"reset": 1}: the final result of what was sent so far; the stream stays open
                               and the next audio starts a fresh utterance, its times still counted from the
                               stream's start
  text message                 {"eof": 1}
Server -> client, exactly one reply per audio or reset message, as Vosk does (its clients read one per send):
  {"partial": "..."}                                                    while a phrase is open
  {"text": "...", "result": [{"word", "start", "end", "conf"}, ...]}    when a pause closes one
  {"alternatives": [{"text", "confidence", "result": [{"word", "start", "end"}]}, ...]}
                                                                        instead, with max_alternatives
and at eof the final result for whatever is left, then the server closes (1000); when the server
shuts down, the same final result, then close 1001 (going away).
Times are seconds from the start of the stream. "result" is left out when the config says "words": false,
and from an empty result ({"text": ""}), as Vosk leaves it out.
Failures send {"error": {...}} and close with the code from service/errors.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from model.audio import RATES
from model.formats import first_intent
from model.recognize import Segment

from ..deps import EngineDep, SettingsDep, check_api_key
from ..errors import BadField, IdleTimeout, UploadTooLarge, close_label, close_websocket, send_within
from ..recognizer import Engine, Session, check_pace
from ..settings import Settings

log = logging.getLogger(__name__)
router = APIRouter()

ENDPOINT = "/v1/stream"


def _whole_number(value: object) -> int | None:
    """JSON's 16000 or 16000.0 as an int; None for anything else (booleans included)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)  # some clients send 16000.0
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class StreamConfig:
    sample_rate: int = 16000
    words: bool = True  # vosk-server's default (VOSK_SHOW_WORDS)
    max_alternatives: int = 0  # vosk-server's default (VOSK_ALTERNATIVES): plain results
    phrase_list: tuple[str, ...] = field(default_factory=tuple)  # a grammar, as in vosk-server
    hotwords: tuple[str, ...] = field(default_factory=tuple)
    grammar: str = ""  # sentence templates (YAML); finals then carry the intent

    @classmethod
    def parse(cls, raw: object, settings: Settings) -> StreamConfig:
        if not isinstance(raw, dict):
            raise BadField('config must be an object: {"config": {"sample_rate": 16000}}', "config")
        rate = _whole_number(raw.get("sample_rate", settings.stream_sample_rate))
        if rate is None or not RATES[0] <= rate <= RATES[1]:
            raise BadField(f"sample_rate must be a whole number of Hz from {RATES[0]} to {RATES[1]}, "
                           f"got {raw.get('sample_rate')!r}", "sample_rate")
        words = raw.get("words", True)
        if not isinstance(words, bool | int | float):  # vosk-server takes bool(words); a string would be ambiguous
            raise BadField(f"words must be true/false or 1/0, got {words!r}", "words")
        alternatives = _whole_number(raw.get("max_alternatives", 0))
        if alternatives is None or alternatives < 0:
            raise BadField(f"max_alternatives must be a whole number, 0 or more, got {raw.get('max_alternatives')!r}",
                           "max_alternatives")
        lists = []
        for name in ("phrase_list", "hotwords"):
            items = raw.get(name, [])
            if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
                raise BadField(f"{name} must be a list of strings", name)
            lists.append(tuple(items))
        grammar = raw.get("grammar", "")
        if not isinstance(grammar, str):
            raise BadField("grammar must be the text of a sentence-template file (YAML); for a list of phrases "
                           "use phrase_list", "grammar")
        if grammar.strip() and lists[0]:
            raise BadField("send either grammar (sentence templates) or phrase_list, not both", "grammar")
        # More alternatives than the server's limit are cut to it, as Vosk gives "up to" the number asked.
        return cls(rate, bool(words), min(alternatives, settings.max_alternatives), *lists,
                   grammar=grammar if grammar.strip() else "")


def result_message(segments: list[Segment], config: StreamConfig) -> dict:
    """A final result in Vosk's shape: text and (with words) the words' times and confidences, or the
    n best alternatives. Vosk leaves "result" out of an empty result."""
    if config.max_alternatives:
        return {"alternatives": _alternatives(segments, config.words)}
    message: dict = {"text": " ".join(s.text for s in segments if s.text)}
    words = [{"conf": w.confidence, "end": w.end, "start": w.start, "word": w.word} for s in segments for w in s.words]
    if config.words and words:
        message["result"] = words
    if config.grammar:
        message["intent"] = first_intent(segments)
    return message


def _alternatives(segments: list[Segment], words: bool) -> list[dict]:
    """Vosk's alternatives: text, confidence (the search's log-score, as Vosk's is its lattice's: higher is
    better, comparable only within one answer) and, with words, their times. Where one reply closes
    several segments, alternative k joins each segment's k-th best (or its last, where it has fewer)."""
    if not segments:
        return [{"text": "", "confidence": 1.0}]  # vosk-server's empty answer (its StoreEmptyReturn)
    out = []
    for k in range(max(len(s.alternatives) for s in segments)):
        picks = [s.alternatives[min(k, len(s.alternatives) - 1)] for s in segments]
        entry: dict = {"confidence": round(sum(h.score for h in picks), 4),
                       "text": " ".join(h.transcript.text for h in picks if h.transcript.text)}
        times = [{"end": w.end, "start": w.start, "word": w.word} for h in picks for w in h.transcript.words]
        if words and times:
            entry["result"] = times
        out.append(entry)
    return out


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


async def _finish(ws: WebSocket, session: Session | None, config: StreamConfig, settings: Settings,
                  code: int) -> None:
    segments = [] if session is None else await session.finish()
    await send_within(ws.send_json(result_message(segments, config)), settings.idle_timeout)
    await send_within(ws.close(code), settings.idle_timeout)


async def _serve(ws: WebSocket, engine: Engine, settings: Settings) -> Session | None:
    """Run one stream to its end; returns its session (None if no audio came) for the metrics.

    Only audio (and eof) keeps a stream alive: the idle deadline counts from the last audio message, so a
    client that repeats its config, or sends audio at a trickle, cannot hold a stream slot for ever.
    """
    config = StreamConfig(sample_rate=settings.stream_sample_rate)
    grammar = None
    session: Session | None = None
    started = last_audio = time.monotonic()
    while True:
        message = await _receive(ws, last_audio + settings.idle_timeout, engine.draining)
        if message is None:  # graceful shutdown: the open segment's final text, then "going away"
            await _finish(ws, session, config, settings, 1001)
            return session
        check_pace(session, started, settings)
        data: bytes | None = message.get("bytes")
        if data is None:
            text = message.get("text") or ""
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
                obj = None
            if not isinstance(obj, dict):
                raise BadField('text messages must be JSON: {"config": {...}} first, {"reset": 1}, or {"eof": 1} '
                               'to finish')
            if "config" in obj:
                if session is not None:
                    raise BadField("config must come before the first audio message", "config")
                config = StreamConfig.parse(obj["config"], settings)
                # A bad phrase list or template fails here, not at first audio.
                grammar = (await engine.templates(config.grammar) if config.grammar
                           else engine.grammar(config.phrase_list))
                continue
            if "eof" in obj:
                await _finish(ws, session, config, settings, 1000)
                return session
            if "reset" in obj:  # vosk-server: the final result so far, and the stream goes on
                segments = [] if session is None else await session.reset()
                await send_within(ws.send_json(result_message(segments, config)), settings.idle_timeout)
                continue
            raise BadField('unknown message: send {"config": {...}}, binary PCM audio, {"reset": 1} or {"eof": 1}')
        if len(data) > settings.max_message_bytes:
            raise UploadTooLarge(f"a message of {len(data)} bytes is over the limit of {settings.max_message_bytes}: "
                                 f"send smaller chunks (0.1-0.5 s of audio each is typical)")
        last_audio = time.monotonic()
        if session is None:
            session = engine.session(config.sample_rate, engine.hotwords(config.hotwords), grammar,
                                     config.max_alternatives)
        segments, partial = await session.accept(data)
        reply = result_message(segments, config) if segments else {"partial": partial}
        await send_within(ws.send_json(reply), settings.idle_timeout)


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

"""One Wyoming connection: its events read within bounds and answered; its utterance freed however it ends.

wyoming's ``AsyncEventHandler.run`` reads with ``async_read_event``, which trusts the lengths an event
header declares (a client could announce gigabytes), waits for ever on a silent client and turns a
malformed header into a silent hang-up; ``Connection.run`` is that loop with the server's limits
(``max_message_bytes``, ``idle_timeout``) and every failure answered with an ``error`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioFormat, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, Eventable
from wyoming.info import SelectProgram
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler

from model.audio import MAX_CHANNELS, RATES
from model.formats import first_intent, full_text
from model.recognize import Segment
from model.templates import Templates

from ..errors import BadField, Busy, ClientGone, IdleTimeout, UploadTooLarge, error_body, report, send_within
from ..metrics import Metrics
from ..recognizer import Engine, Session, check_pace
from ..settings import Settings

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Eventable)

ENDPOINT = "wyoming"  # the metrics' endpoint label for audio and processing seconds
LANGUAGE = "en"
HEADER_LIMIT = 2**16  # asyncio's StreamReader limit, which wyoming's server keeps: longest event header line
WIDTHS = (1, 4)  # bytes per sample a chunk may have: 8-bit unsigned as in WAV, 16-, 24- and 32-bit signed


@dataclass
class Service:
    """What every connection shares: the engine (model, inference pool, utterance slots) and the settings,
    the info event ``describe`` answers, and the template grammar of ``--sentences`` (None: free text)."""

    engine: Engine
    settings: Settings
    info: Event
    names: frozenset[str]  # what a transcribe's "name" may be: the program's and the model's
    grammar: Templates | None = None
    draining: bool = False  # set at SIGTERM: connections close once their utterance has its transcript
    connections: int = 0

    @property
    def metrics(self) -> Metrics:
        return self.engine.metrics


def error_event(exc: BaseException, metrics: Metrics | None) -> Event:
    """The ``error`` event for a failure: service/errors.py's message and kind (its code), counted and logged
    as the HTTP service's are; an unexpected failure says only that the server log has the details."""
    failure = report(exc, metrics, "a Wyoming connection")
    return Error(text=error_body(exc, failure)["error"]["message"], code=failure.kind).event()


async def read_event(reader: asyncio.StreamReader, max_bytes: int) -> Event | None:
    """The next event, as ``wyoming.event.async_read_event`` reads it but refusing more than ``max_bytes`` of
    data and payload and a header that is not JSON; None when the connection has ended."""
    try:
        line = await reader.readline()
    except ValueError:  # readline's LimitOverrunError: no newline within the reader's limit
        raise UploadTooLarge(f"an event header is a line of JSON under {HEADER_LIMIT} bytes") from None
    if not line.endswith(b"\n"):
        return None  # the end of the connection, perhaps mid-line: the client went away
    header = _json_object(line, "an event header")
    if not isinstance(header.get("type"), str):
        raise BadField('an event header needs a "type": {"type": "audio-chunk", ...}', "type")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise BadField('an event\'s "data" must be a JSON object', "data")
    data_length, payload_length = _length(header, "data_length"), _length(header, "payload_length")
    if data_length + payload_length > max_bytes:
        raise UploadTooLarge(f"an event of {data_length + payload_length} bytes is over the limit of {max_bytes} "
                             "(EDGESCRIBE_MAX_MESSAGE_BYTES): send smaller audio chunks (0.1-1 s each is typical)")
    try:
        if data_length:
            data = {**data, **_json_object(await reader.readexactly(data_length), "an event's data")}
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    return Event(type=header["type"], data=data, payload=payload)


def _json_object(raw: bytes, what: str) -> dict:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        value = None
    if not isinstance(value, dict):
        raise BadField(f'{what} must be a JSON object, as in {{"type": "describe"}}')
    return value


def _length(header: dict, name: str) -> int:
    value = header.get(name) or 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadField(f"{name} must be a whole number of bytes, got {value!r}", name)
    return value


def _parse(kind: type[E], event: Event) -> E:
    """An event as wyoming's class for its type, or ``BadField`` naming what it lacks."""
    try:
        return kind.from_event(event)  # type: ignore[return-value]
    except KeyError as e:
        raise BadField(f"a {event.type} event needs {e.args[0]!r} in its data", str(e.args[0])) from None


def _check_format(fmt: AudioFormat) -> None:
    for name, low, high in (("rate", *RATES), ("width", *WIDTHS), ("channels", 1, MAX_CHANNELS)):
        value = getattr(fmt, name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise BadField(f"{name} must be a whole number from {low} to {high}, got {value!r}", name)


def pcm16_mono(audio: bytes, width: int, channels: int) -> bytes:
    """Interleaved PCM of any width (1 byte: unsigned; 2-4: signed; little-endian, as in WAV) and channel
    count -> 16-bit mono, the channels averaged.

    Not wyoming's ``AudioChunkConverter``: its audioop ``tomono`` takes exactly two channels and adds them
    (clipping loud speech), and audioop is gone from Python 3.13, where wyoming falls back to pure Python.
    """
    frame = width * channels
    if len(audio) % frame:
        raise BadField(f"an audio chunk of {len(audio)} bytes is not a whole number of {frame}-byte frames "
                       f"({channels} channels of {width} bytes)", "audio")
    raw = np.frombuffer(audio, np.uint8).reshape(-1, width)
    if width == 1:
        samples = (raw[:, 0].astype(np.int16) - 128) * 256
    else:  # the top two bytes of each little-endian sample: what audioop.lin2lin keeps
        samples = raw[:, -2:].copy().view("<i2")[:, 0]
    if channels > 1:
        samples = np.round(samples.reshape(-1, channels).mean(axis=1))
    return samples.astype("<i2").tobytes()


@dataclass
class _Utterance:
    """Audio-start to audio-stop: a recognition session and the utterance slot it holds."""

    session: Session
    rate: int
    slot: contextlib.ExitStack
    started: float
    last_audio: float
    segments: list[Segment] = field(default_factory=list)


class Connection(AsyncEventHandler):
    """One client: its events answered in order, at most one utterance open at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, service: Service) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.request = Transcribe()  # the options of the next (or open) utterance
        self.utterance: _Utterance | None = None
        self.last_event = time.monotonic()
        self.handlers: dict[str, Callable[[Event], Awaitable[None]]] = {
            "describe": self._describe, "ping": self._ping, "select-program": self._select_program,
            "transcribe": self._transcribe, "audio-start": self._audio_start, "audio-chunk": self._audio_chunk,
            "audio-stop": self._audio_stop}

    async def run(self) -> None:
        """Answer events until the client leaves, a failure (answered with an ``error`` event) or a shutdown."""
        self._is_running = True  # the base class's flag, which ``stop()`` clears
        self.service.connections += 1
        try:
            limit = self.service.settings.max_connections
            if self.service.connections > limit:
                await self._fail(Busy(f"{limit} connections are open, the most this server takes "
                                      "(EDGESCRIBE_MAX_CONNECTIONS)", self.service.settings.retry_after))
            else:
                await self._serve()
        finally:
            self.service.connections -= 1
            await self.disconnect()
            self.writer.close()

    async def _serve(self) -> None:
        try:
            while self._is_running:
                event = await self._next_event()
                if event is None or not await self.handle_event(event):
                    break
                if self.service.draining and self.utterance is None:
                    break  # shutting down, and this connection's last transcript has gone
        except (ClientGone, ConnectionError) as e:
            log.debug("a Wyoming client went away: %s", e)
        except Exception as e:
            self._end()  # the slot is free while the client is told
            await self._fail(e)
            if not isinstance(e, IdleTimeout):  # a silent client has nothing in flight to wait for
                await self._linger()

    async def handle_event(self, event: Event) -> bool:
        handler = self.handlers.get(event.type)
        if handler is None:
            log.debug("dropped a %r event", event.type)  # the protocol's rule for events a server does not know
        else:
            await handler(event)
        return True

    async def disconnect(self) -> None:
        self._end()  # a client that vanished mid-utterance leaves no session and no slot behind

    async def _next_event(self) -> Event | None:
        """The next event; ``IdleTimeout`` when none comes in time. Inside an utterance only audio counts, so
        pings cannot hold an utterance slot."""
        s = self.service.settings
        since = self.last_event if self.utterance is None else self.utterance.last_audio
        try:
            event = await asyncio.wait_for(read_event(self.reader, s.max_message_bytes),
                                           max(0.0, since + s.idle_timeout - time.monotonic()))
        except asyncio.TimeoutError:
            what = "no audio came" if self.utterance is not None else "the connection was idle"
            raise IdleTimeout(f"{what} for {s.idle_timeout:g} s (EDGESCRIBE_IDLE_TIMEOUT): send audio-chunk events "
                              "as the audio is captured, then audio-stop") from None
        self.last_event = time.monotonic()
        return event

    async def _send(self, event: Event) -> None:
        await send_within(self.write_event(event), self.service.settings.idle_timeout)

    async def _fail(self, exc: Exception) -> None:
        with contextlib.suppress(ClientGone, ConnectionError, RuntimeError):  # nobody left to tell
            await self._send(error_event(exc, self.service.metrics))

    async def _linger(self) -> None:
        """After the error event: end our side, then drop what the client still sends until it hangs up (for
        up to ``idle_timeout``). Closing on a client still streaming audio would reset the connection, and a
        reset can discard the error event before the client reads it; this way a client such as Home
        Assistant's, which sends all its audio before it reads, finds the error and then the end."""
        deadline = time.monotonic() + self.service.settings.idle_timeout
        with contextlib.suppress(OSError, RuntimeError, ValueError, asyncio.TimeoutError):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            while await asyncio.wait_for(self.reader.read(HEADER_LIMIT), max(0.0, deadline - time.monotonic())):
                pass

    async def _describe(self, event: Event) -> None:
        await self._send(self.service.info)

    async def _ping(self, event: Event) -> None:
        await self._send(Pong(text=_parse(Ping, event).text).event())

    async def _select_program(self, event: Event) -> None:
        self._check_name(_parse(SelectProgram, event).name)

    async def _transcribe(self, event: Event) -> None:
        if self.utterance is not None:
            raise BadField("transcribe came in the middle of an utterance: send audio-stop first")
        request = _parse(Transcribe, event)
        if request.name is not None:
            self._check_name(request.name)
        language = request.language
        if language is not None and (not isinstance(language, str)
                                     or language.lower().replace("_", "-").split("-")[0] != LANGUAGE):
            raise BadField(f"this server transcribes English only (language {LANGUAGE!r}), not {language!r}",
                           "language")
        for name in ("transcript_names", "transcript_terms"):
            items = getattr(request, name)
            if items is not None and not (isinstance(items, list) and all(isinstance(p, str) for p in items)):
                raise BadField(f"{name} must be a list of strings", name)
        self.request = request

    async def _audio_start(self, event: Event) -> None:
        start = _parse(AudioStart, event)
        if self.utterance is not None:
            raise BadField("audio-start came before the last utterance's audio-stop")
        self._begin(start)

    async def _audio_chunk(self, event: Event) -> None:
        chunk = _parse(AudioChunk, event)
        if self.utterance is None:
            self._begin(chunk)  # an utterance may start with its first chunk, as wyoming's own servers allow
        u = self.utterance
        _check_format(chunk)
        if chunk.rate != u.rate:
            raise BadField(f"a chunk at {chunk.rate} Hz in an utterance at {u.rate} Hz: keep one rate per "
                           "utterance", "rate")
        check_pace(u.session, u.started, self.service.settings)
        u.last_audio = time.monotonic()
        segments, _ = await u.session.accept(pcm16_mono(chunk.audio, chunk.width, chunk.channels))
        u.segments += segments

    async def _audio_stop(self, event: Event) -> None:
        _parse(AudioStop, event)
        u = self.utterance
        segments = [] if u is None else u.segments + await u.session.finish()
        self._end()
        self.request = Transcribe()  # options are the utterance's: the next one starts from none
        await self._send(self._transcript(segments))

    def _check_name(self, name: Any) -> None:
        if name not in self.service.names:
            raise BadField(f"no program or model named {name!r} here: use one of {sorted(self.service.names)}",
                           "name")

    def _begin(self, fmt: AudioFormat) -> None:
        _check_format(fmt)
        engine = self.service.engine
        words = [*(self.request.transcript_names or ()), *(self.request.transcript_terms or ())]
        hotwords = engine.hotwords(words) if self.service.grammar is None else []
        slot = contextlib.ExitStack()
        slot.enter_context(engine.streams.hold())  # Busy when every utterance slot is taken
        try:
            session = engine.session(fmt.rate, hotwords, self.service.grammar)
        except BaseException:
            slot.close()
            raise
        now = time.monotonic()
        self.utterance = _Utterance(session, fmt.rate, slot, now, now)

    def _end(self) -> None:
        u, self.utterance = self.utterance, None
        if u is not None:
            u.slot.close()
            self.service.metrics.observe(ENDPOINT, u.session.seconds, u.session.processing)

    def _transcript(self, segments: list[Segment]) -> Event:
        event = Transcript(text=full_text(segments), language=LANGUAGE).event()
        if self.service.grammar is not None:  # template mode: the match, as the HTTP service answers it
            event.data["intent"] = first_intent(segments)
        return event

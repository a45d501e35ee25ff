"""The shared model behind bounded pools of inference threads; one ``Session`` per live stream.

The ``Recognizer`` (network weights, feature extractor) is shared and read-only; every request and
stream owns its own ``Stream`` state. Inference never runs on the event loop: live streams go to a
pool of ``workers`` threads and file uploads to a separate pool of ``upload_workers``, so an upload
(which holds its thread for its whole run) can never make a live stream wait. Admission is bounded
separately for requests and streams (``Slots``): when every slot is taken the caller gets ``Busy``
(503 / 4503) at once instead of joining a queue without end, so each pool's queue holds at most
``max_requests`` or ``max_streams`` items.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, TypeVar

import numpy as np
from prometheus_client import Gauge

from model.audio import AudioTooLong, DecodeCancelled, DecodeLimits, iter_audio, pcm16_to_float
from model.grammar import Grammar, GrammarError
from model.recognize import Recognizer, Segment
from model.templates import Templates
from model.tokens import normalize_text

from .errors import BadField, Busy, ClientGone, IdleTimeout
from .memory import give_back_free_memory
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class Slots:
    """A counter of held slots that refuses, rather than waits, when full. Used from the event loop only."""

    def __init__(self, what: str, limit: int, retry_after: int, gauge: Gauge) -> None:
        self.what, self.limit, self.retry_after, self.gauge = what, limit, retry_after, gauge
        self.used = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self.used >= self.limit:
            raise Busy(f"all {self.limit} {self.what} slots are busy; retry after {self.retry_after} s "
                       f"(the server's limit is EDGESCRIBE_MAX_{self.what.upper()})", self.retry_after)
        self.used += 1
        self.gauge.inc()
        try:
            yield
        finally:
            self.used -= 1
            self.gauge.dec()


@dataclass(frozen=True)
class Transcription:
    segments: list[Segment]
    duration: float  # seconds of audio decoded
    processing: float  # seconds spent decoding and recognising


class Engine:
    def __init__(self, recognizer: Recognizer, settings: Settings, metrics: Metrics,
                 model_id: str = "edgescribe", model_created: int = 0) -> None:
        self.recognizer = recognizer
        self.model_id, self.model_created = model_id, model_created  # what /v1/models reports
        self.settings = settings
        self.metrics = metrics
        self.stream_pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="stream")
        self.upload_pool = ThreadPoolExecutor(max_workers=settings.upload_workers, thread_name_prefix="upload")
        self.requests = Slots("requests", settings.max_requests, settings.retry_after, metrics.active_requests)
        self.streams = Slots("streams", settings.max_streams, settings.retry_after, metrics.active_streams)
        # Set when the server begins a graceful shutdown: open streams send their final text and close.
        self.draining = asyncio.Event()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run stream work on the streams' pool."""
        return await asyncio.get_running_loop().run_in_executor(self.stream_pool, fn, *args)

    def close(self) -> None:
        """Let queued and running inference finish, then stop the threads (graceful shutdown)."""
        self.stream_pool.shutdown(wait=True)
        self.upload_pool.shutdown(wait=True)

    def hotwords(self, phrases: Iterable[str]) -> list[str]:
        """Normalised phrases the model can spell, deduplicated, the last ``max_hotwords`` of them."""
        vocab = self.recognizer.bundle.vocab
        out: dict[str, None] = {}
        for phrase in phrases:
            text = normalize_text(phrase)
            if text and not vocab.unknown_chars(text):
                out.pop(text, None)
                out[text] = None
        limit = self.settings.max_hotwords
        return list(out)[-limit:] if limit else []

    def grammar(self, phrases: Sequence[str], field: str = "phrase_list") -> Grammar | None:
        """A checked phrase list (Vosk's grammar mode), None for an empty one; 400 with the reason if bad."""
        if not phrases:
            return None
        try:
            return self.recognizer.grammar(phrases)
        except GrammarError as e:
            raise BadField(str(e), field) from e

    async def templates(self, text: str, field: str = "grammar") -> Templates:
        """Sentence templates compiled off the event loop (cached by content); 400 naming the line if bad."""
        limit = self.settings.max_template_bytes
        if len(text.encode("utf-8", "replace")) > limit:
            raise BadField(f"the template is over {limit} bytes (EDGESCRIBE_MAX_TEMPLATE_BYTES)", field)
        try:
            return await self.run(self.recognizer.templates, text, None, field, self.settings.max_template_nodes)
        except GrammarError as e:  # TemplateError is one
            raise BadField(str(e), field) from e

    async def transcribe(self, source: IO[bytes], hotwords: Sequence[str], abandoned: Awaitable[object],
                         grammar: Grammar | Templates | None = None,
                         on_segment: Callable[[Segment], None] | None = None) -> Transcription:
        """Transcribe a whole file in bounded chunks; stop early when ``abandoned`` completes (client gone).

        ``on_segment`` is called on the event loop with each segment as a pause closes it, all of them before
        this returns."""
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        closed = None if on_segment is None else functools.partial(loop.call_soon_threadsafe, on_segment)
        work = asyncio.ensure_future(loop.run_in_executor(self.upload_pool, self._transcribe_file, source, hotwords,
                                                          grammar, cancel, closed))
        gone = asyncio.ensure_future(abandoned)
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():
                cancel.set()
                with contextlib.suppress(DecodeCancelled):
                    await work  # the worker notices within one frame; its file is closed by the caller after
                raise ClientGone("the client disconnected before the transcript was ready")
        result = work.result()
        self.metrics.observe("/v1/audio/transcriptions", result.duration, result.processing)
        return result

    async def transcribe_segments(self, source: IO[bytes], hotwords: Sequence[str], abandoned: Awaitable[object],
                                  grammar: Grammar | Templates | None = None) -> AsyncIterator[Segment]:
        """``transcribe``, yielding each segment as a pause closes it. Closing the iterator early (its
        consumer went away) stops the work; a failure is raised after the segments that came before it."""
        closed: asyncio.Queue[Segment] = asyncio.Queue()  # bounded by the file: a few words per second of audio
        work = asyncio.ensure_future(self.transcribe(source, hotwords, abandoned, grammar, closed.put_nowait))
        try:
            while not work.done():
                getting = asyncio.ensure_future(closed.get())
                await asyncio.wait({getting, work}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()  # the work ended: what it closed is all in the queue already
                    break
                yield getting.result()
            while not closed.empty():
                yield closed.get_nowait()
            work.result()  # the failure, if any
        finally:
            if not work.done():
                work.cancel()  # transcribe() stops its worker and waits for it before it gives up
            with contextlib.suppress(asyncio.CancelledError, Exception):  # told already, or nobody is left to tell
                await work

    def _transcribe_file(self, source: IO[bytes], hotwords: Sequence[str], grammar: Grammar | Templates | None,
                         cancel: threading.Event,
                         on_segment: Callable[[Segment], object] | None = None) -> Transcription:
        started = time.perf_counter()
        s = self.settings
        limits = DecodeLimits(s.max_audio_seconds, s.min_upload_bitrate or None)
        chunks = iter_audio(source, self.recognizer.sample_rate, s.chunk_seconds, limits=limits,
                            cancelled=cancel.is_set)
        counted = _CountedChunks(chunks, cancel)
        segments = []
        try:
            for segment in self.recognizer.iter_segments(counted, hotwords, grammar):
                segments.append(segment)
                if on_segment is not None:
                    on_segment(segment)
        finally:
            give_back_free_memory()  # what the chunks reused during the request (service/memory.py)
        return Transcription(segments, counted.samples / self.recognizer.sample_rate,
                             time.perf_counter() - started)

    def session(self, sample_rate: int, hotwords: Sequence[str], grammar: Grammar | Templates | None = None,
                alternatives: int = 0) -> Session:
        return Session(self, sample_rate, hotwords, grammar, alternatives)


class _CountedChunks:
    """Pass chunks through, counting samples and stopping when the request is cancelled."""

    def __init__(self, chunks: Iterable[np.ndarray], cancel: threading.Event) -> None:
        self.chunks, self.cancel, self.samples = chunks, cancel, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks:
            if self.cancel.is_set():
                raise DecodeCancelled
            self.samples += chunk.size
            yield chunk


class PcmResampler:
    """16-bit little-endian mono PCM at any rate -> float32 at the model's rate, across message boundaries.

    FFmpeg's resampler (through PyAV, which ``model.audio`` already needs) keeps its filter state
    between calls, so chunk edges add no clicks and no samples are lost; ``flush`` returns its tail.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        import av  # imported here, as in model.audio: only decoding needs FFmpeg's libraries

        self._av = av
        self.in_rate = in_rate
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=out_rate)

    def _run(self, frame: object) -> np.ndarray:
        out = [f.to_ndarray().reshape(-1) for f in self.resampler.resample(frame)]
        return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)

    def accept(self, pcm: bytes) -> np.ndarray:
        samples = pcm16_to_float(pcm)
        if samples.size == 0:
            return samples
        frame = self._av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.in_rate
        return self._run(frame)

    def flush(self) -> np.ndarray:
        return self._run(None)


class Session:
    """One live stream: its own recognition state and resampler; one inference call at a time.

    ``alternatives``: each segment also carries its n best transcripts. A ``reset`` ends the utterance
    and starts a fresh one (new recognition state and resampler) whose clock goes on from the old one's.
    """

    def __init__(self, engine: Engine, sample_rate: int, hotwords: Sequence[str],
                 grammar: Grammar | Templates | None = None, alternatives: int = 0) -> None:
        self.engine = engine
        self.sample_rate, self.hotwords, self.grammar, self.alternatives = sample_rate, hotwords, grammar, alternatives
        self.processing = 0.0
        self._start(0.0)

    def _start(self, start_seconds: float) -> None:
        rec = self.engine.recognizer
        self.stream = rec.stream(self.hotwords, grammar=self.grammar, alternatives=self.alternatives,
                                 start_seconds=start_seconds)
        rate = rec.sample_rate
        self.resampler = PcmResampler(self.sample_rate, rate) if self.sample_rate != rate else None

    def _accept(self, pcm: bytes) -> tuple[list[Segment], str]:
        started = time.perf_counter()
        samples = self.resampler.accept(pcm) if self.resampler else pcm16_to_float(pcm)
        segments = self.stream.accept(samples)
        partial = self.stream.partial()
        self.processing += time.perf_counter() - started
        return segments, partial

    def _finish(self) -> list[Segment]:
        started = time.perf_counter()
        segments = self.stream.accept(self.resampler.flush()) if self.resampler else []
        segments = segments + self.stream.finish()
        self.processing += time.perf_counter() - started
        return segments

    async def accept(self, pcm: bytes) -> tuple[list[Segment], str]:
        """Feed PCM bytes; returns the segments closed at pauses and the open segment's partial text."""
        return await self.engine.run(self._accept, pcm)

    def _reset(self) -> list[Segment]:
        segments = self._finish()
        self._start(self.stream.seconds)
        return segments

    async def finish(self) -> list[Segment]:
        return await self.engine.run(self._finish)

    async def reset(self) -> list[Segment]:
        """The open utterance's last segments; the audio after starts a fresh one on the same clock."""
        return await self.engine.run(self._reset)

    @property
    def seconds(self) -> float:
        return self.stream.seconds


def check_pace(session: Session | None, started: float, settings: Settings) -> None:
    """Refuse a stream (WebSocket or Wyoming) that sends audio far slower than real time, or more audio
    than one request may hold."""
    seconds = 0.0 if session is None else session.seconds
    if seconds > settings.max_audio_seconds:
        raise AudioTooLong(f"the stream has sent more than {settings.max_audio_seconds:g} s of audio, the most one "
                           f"stream may (EDGESCRIBE_MAX_AUDIO_SECONDS): open a new stream to go on")
    owed = settings.min_stream_realtime * (time.monotonic() - started - settings.idle_timeout)
    if owed > 0 and seconds < owed:
        raise IdleTimeout(f"the stream has sent {seconds:.1f} s of audio in {time.monotonic() - started:.0f} s, "
                          f"under the floor of {settings.min_stream_realtime:g} s per second "
                          f"(EDGESCRIBE_MIN_STREAM_REALTIME): send live audio as it is captured")

"""Decoding audio files to 16 kHz mono float32 through PyAV (FFmpeg's libraries), safely for untrusted input.

``iter_audio`` yields bounded chunks, so a 30-minute file never sits in memory whole;
``load_audio`` collects them for callers that want one array.

Every file is opened as if hostile, since the service hands client uploads straight to it:

* Only the audio containers in ``DEMUXERS`` may be used (FFmpeg's ``format_whitelist``). Left to
  guess, FFmpeg also takes playlists and session descriptions (ffconcat, HLS, SDP), which open other
  files by relative path or bind network ports; with the list they are refused before a byte of
  them is acted on. Nested opens are refused too (``protocol_whitelist``).
* Sample rates outside ``RATES`` are refused: a 1 Hz file upsampled 16000x turns kilobytes into
  gigabytes. One frame may hold at most ``MAX_FRAME_SECONDS`` of audio, so one resampler call is bounded.
* Audio is counted against ``DecodeLimits`` as it is decoded, before it is resampled: headers may lie
  about (or leave out) the length, and a file may hold far more audio than its size suggests.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
# Telephone audio up to studio rates: what any microphone or codec produces. The live stream takes the same.
RATES = (8000, 192000)
# Real codecs' frames are 2.5-120 ms and FFmpeg's PCM packets a fraction of a second; 10 s is generous.
MAX_FRAME_SECONDS = 10.0
# FFmpeg mixes standard layouts (mono to 7.1) down itself; wider files are averaged here, up to this many.
MAX_CHANNELS = 64
FFMPEG_MIX_CHANNELS = 8
# The audio containers an upload may be in. Names are FFmpeg's demuxers (`ffmpeg -demuxers`); "mov"
# covers mp4/m4a/3gp, "matroska" covers webm, "ogg" covers Opus, Vorbis and Speex, "asf" is WMA.
DEMUXERS = ("wav", "w64", "aiff", "au", "caf", "flac", "mp3", "ogg", "matroska", "webm", "mov", "mp4", "m4a",
            "aac", "asf", "wv", "amr", "ac3", "eac3")
SUPPORTED = "wav, flac, mp3, ogg/opus, webm/mkv, mp4/m4a, aac, aiff, au, caf, wma, wavpack, amr or ac3"


class AudioDecodeError(ValueError):
    """The input is not audio that can be decoded here; the message says what was wrong."""


class AudioTooLong(ValueError):
    """The decoded audio is longer than the caller's limit."""


class DecodeCancelled(Exception):
    """The caller's ``cancelled`` check said stop (its client left); raised between frames."""


@dataclass(frozen=True)
class DecodeLimits:
    """How much audio one file may decode to. A file over a limit stops decoding with ``AudioTooLong``."""

    max_seconds: float | None = None  # the longest audio, whatever the file's size
    # Bits of file per second of audio below which a file counts as a decompression bomb (a few KB of
    # FLAC or Matroska can hold hours of silence). Speech codecs need 4.75 kbit/s (AMR) or more even at
    # their lowest settings, so 1000 leaves room for silence-heavy files. None: no floor.
    min_bitrate: float | None = None
    # Audio always allowed, whatever the size: a short, mostly silent file compresses extremely well.
    free_seconds: float = 60.0

    def seconds_for(self, size_bytes: int | None) -> tuple[float | None, str]:
        """The most audio a file of this size may hold, and which limit that is (for the message)."""
        best, why = self.max_seconds, "the limit"
        if self.min_bitrate and size_bytes is not None:
            by_size = self.free_seconds + size_bytes * 8 / self.min_bitrate
            if best is None or by_size < best:
                best, why = by_size, (f"what a {size_bytes}-byte file may hold (at least {self.min_bitrate:g} bits "
                                      f"per second of audio, beyond the first {self.free_seconds:g} s)")
        return best, why


Source = str | os.PathLike | bytes | io.IOBase


def iter_audio(
    source: Source, sample_rate: int = SAMPLE_RATE, chunk_seconds: float = 10.0,
    max_seconds: float | None = None, *, limits: DecodeLimits | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Iterator[np.ndarray]:
    """Yield float32 mono chunks in [-1, 1] at ``sample_rate``, ``chunk_seconds`` each (the last one shorter).

    ``max_seconds`` is shorthand for ``DecodeLimits(max_seconds)``; ``cancelled`` is polled once a frame.
    """
    import av  # imported here: only decoding needs FFmpeg's libraries

    if limits is None:
        limits = DecodeLimits(max_seconds)
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    limit, why = limits.seconds_for(_size(source))
    chunker = _Chunker(max(1, int(chunk_seconds * sample_rate)))
    decoded = 0.0  # seconds of input decoded, counted before resampling
    container = _open(av, source)
    with container:
        streams = container.streams.audio
        if not streams:
            raise AudioDecodeError("the file has no audio stream")
        stream = streams[0]
        _check_rate(stream.codec_context.sample_rate or None)  # 0: unknown until decoded
        declared = _declared_seconds(container, stream)
        if limit is not None and declared is not None and declared > limit:
            # Refuse before decoding when the headers already say so.
            raise AudioTooLong(f"audio is {declared:.0f} s long, over {why} of {limit:g} s")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        resampling = False  # once the resampler holds samples, every later frame goes through it, in order
        try:
            for frame in container.decode(stream):
                if cancelled is not None and cancelled():
                    raise DecodeCancelled
                _check_frame(frame)
                decoded += frame.samples / frame.sample_rate
                if limit is not None and decoded > limit:
                    raise AudioTooLong(f"audio is longer than {why} of {limit:g} s")
                direct = None if resampling else _as_is(frame, sample_rate)
                if direct is not None:
                    yield from chunker.add(direct)
                    continue
                resampling = True
                for out in resampler.resample(_mixable(av, frame)):
                    yield from chunker.add(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            for out in resampler.resample(None):  # the resampler's buffered tail
                yield from chunker.add(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        except av.FFmpegError as e:
            raise AudioDecodeError(f"audio stream is corrupt: {_reason(e)}") from e
        yield from chunker.rest()
    if chunker.total == 0:
        raise AudioDecodeError("the file decodes to no audio samples")


def _open(av, source: Source):
    """Open ``source`` with only the whitelisted demuxers and no nested (network, playlist) inputs."""
    path = isinstance(source, str | os.PathLike)
    # A path is read through FFmpeg's "file" protocol; a file object through PyAV's own I/O, so it needs none.
    options = {"format_whitelist": ",".join(DEMUXERS), "protocol_whitelist": "file" if path else "none"}
    try:
        return av.open(os.fspath(source) if path else source, mode="r", options=options)
    except FileNotFoundError as e:
        raise AudioDecodeError(f"no such file: {e.filename}") from e
    except av.ArgumentError as e:
        # EINVAL from the format check: the bytes look like some other format (a playlist, a session
        # description, an image...). Say what we take; never what FFmpeg thought it was.
        raise AudioDecodeError(f"not an audio file in a supported format: send {SUPPORTED}") from e
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise AudioDecodeError(f"not a decodable audio file: {_reason(e)}") from e


def _size(source: Source) -> int | None:
    """The file's size in bytes, if it can be known without reading it."""
    if isinstance(source, str | os.PathLike):
        try:
            return os.path.getsize(source)
        except OSError:
            return None
    try:
        here = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None


def _check_rate(rate: int | None) -> None:
    if rate is None:
        return
    if not RATES[0] <= rate <= RATES[1]:
        raise AudioDecodeError(f"a sample rate of {rate} Hz is not supported: send audio sampled at "
                               f"{RATES[0]}-{RATES[1]} Hz")


def _check_frame(frame) -> None:
    _check_rate(frame.sample_rate)
    channels = len(frame.layout.channels)
    if channels > MAX_CHANNELS:
        raise AudioDecodeError(f"audio with {channels} channels is not supported: send at most {MAX_CHANNELS} "
                               f"(mono is best)")
    if frame.samples > MAX_FRAME_SECONDS * frame.sample_rate:
        raise AudioDecodeError(f"one audio frame holds {frame.samples / frame.sample_rate:.0f} s, more than "
                               f"{MAX_FRAME_SECONDS:g} s: the file is malformed; re-encode it")


# Sample formats a mono frame at the wanted rate can be read in directly, and their scale to [-1, 1]:
# the same numbers as FFmpeg's resampler gives (a power-of-two scale is exact), without its per-frame
# cost, which was most of decoding a 16 kHz file (frames of a few hundred samples each).
_DIRECT_FORMATS = {"flt": (np.float32, None), "fltp": (np.float32, None),
                   "s16": (np.int16, 32768.0), "s16p": (np.int16, 32768.0)}


def _as_is(frame, sample_rate: int) -> np.ndarray | None:
    """A mono frame already at ``sample_rate`` in a plain format, as float32; None when it needs resampling."""
    direct = _DIRECT_FORMATS.get(frame.format.name)
    if direct is None or frame.sample_rate != sample_rate or len(frame.layout.channels) != 1:
        return None
    dtype, scale = direct
    samples = np.frombuffer(frame.planes[0], dtype=dtype)[: frame.samples]  # the plane may be padded
    if scale is None:
        return samples.copy()  # the frame's buffer is reused by the decoder
    return samples.astype(np.float32) * np.float32(1.0 / scale)


def _mixable(av, frame):
    """The frame itself, or for more channels than FFmpeg has a layout for, their average as one mono frame."""
    channels = len(frame.layout.channels)
    if channels <= FFMPEG_MIX_CHANNELS:
        return frame
    data = frame.to_ndarray()  # planar: (channels, samples); packed: (1, samples x channels)
    planar = frame.format.is_planar
    scale = {"u8": (128.0, 128.0), "s16": (0.0, 32768.0), "s32": (0.0, 2.0**31), "s64": (0.0, 2.0**63)}.get(
        frame.format.name.rstrip("p"), (0.0, 1.0))  # float formats are already in [-1, 1]
    samples = data.reshape(channels, -1) if planar else data.reshape(-1, channels).T
    mono = ((samples.astype(np.float64) - scale[0]) / scale[1]).mean(axis=0).astype(np.float32)
    out = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt", layout="mono")
    out.sample_rate = frame.sample_rate
    out.pts, out.time_base = frame.pts, frame.time_base
    return out


class _Chunker:
    """Regroup arrays of any size into chunks of ``size`` samples, copying each sample once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer = np.empty(size, np.float32)
        self.filled = 0
        self.total = 0

    def add(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        self.total += samples.size
        start = 0
        while start < samples.size:
            take = min(self.size - self.filled, samples.size - start)
            self.buffer[self.filled : self.filled + take] = samples[start : start + take]
            self.filled += take
            start += take
            if self.filled == self.size:
                yield self.buffer
                self.buffer, self.filled = np.empty(self.size, np.float32), 0

    def rest(self) -> Iterator[np.ndarray]:
        if self.filled:
            yield self.buffer[: self.filled].copy()


def _declared_seconds(container, stream) -> float | None:
    """The duration the file's headers claim, if any (a lower bound is all we need to refuse)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # FFmpeg's AV_TIME_BASE
    return None


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def load_audio(source: Source, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    chunks = list(iter_audio(source, sample_rate, max_seconds=max_seconds))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian 16-bit PCM bytes (the Vosk stream format) -> float32 in [-1, 1]."""
    if len(data) % 2:
        raise AudioDecodeError("16-bit PCM needs an even number of bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0

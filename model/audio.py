"""Decoding any audio container to 16 kHz mono float32 through PyAV (FFmpeg's libraries).

``iter_audio`` yields bounded chunks, so a 30-minute file never sits in memory whole;
``load_audio`` collects them for callers that want one array.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import numpy as np

SAMPLE_RATE = 16000


class AudioDecodeError(ValueError):
    """The input is not audio that FFmpeg can decode; the message says what was wrong."""


class AudioTooLong(ValueError):
    """The decoded audio is longer than the caller's limit."""


Source = str | os.PathLike | bytes | io.IOBase


def iter_audio(
    source: Source, sample_rate: int = SAMPLE_RATE, chunk_seconds: float = 10.0, max_seconds: float | None = None
) -> Iterator[np.ndarray]:
    """Yield float32 mono chunks in [-1, 1] at ``sample_rate``, about ``chunk_seconds`` each."""
    import av  # imported here: only decoding needs FFmpeg's libraries

    if isinstance(source, bytes):
        source = io.BytesIO(source)
    chunk_len = max(1, int(chunk_seconds * sample_rate))
    limit = None if max_seconds is None else int(max_seconds * sample_rate)
    total = 0
    try:
        container = av.open(source if not isinstance(source, os.PathLike) else os.fspath(source), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise AudioDecodeError(f"not a decodable audio file: {_reason(e)}") from e
    except FileNotFoundError as e:
        raise AudioDecodeError(f"no such file: {e.filename}") from e
    with container:
        streams = container.streams.audio
        if not streams:
            raise AudioDecodeError("the file has no audio stream")
        declared = _declared_seconds(container, streams[0])
        if max_seconds is not None and declared is not None and declared > max_seconds:
            # Refuse before decoding: a tiny file can declare (and hold) hours of audio at a low rate.
            raise AudioTooLong(f"audio is {declared:.0f} s long, over the limit of {max_seconds:g} s")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        pending: list[np.ndarray] = []
        pending_len = 0
        try:
            frames = container.decode(streams[0])
            for frame in _with_flush(frames):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    pending.append(arr)
                    pending_len += arr.size
                    total += arr.size
                    if limit is not None and total > limit:
                        raise AudioTooLong(f"audio is longer than the limit of {max_seconds:g} s")
                    while pending_len >= chunk_len:
                        joined = np.concatenate(pending)
                        yield joined[:chunk_len]
                        pending, pending_len = [joined[chunk_len:]], joined.size - chunk_len
        except av.FFmpegError as e:
            raise AudioDecodeError(f"audio stream is corrupt: {_reason(e)}") from e
        if pending_len:
            yield np.concatenate(pending)
    if total == 0:
        raise AudioDecodeError("the file decodes to no audio samples")


def _declared_seconds(container, stream) -> float | None:
    """The duration the file's headers claim, if any (a lower bound is all we need to refuse)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # FFmpeg's AV_TIME_BASE
    return None


def _with_flush(frames):
    yield from frames
    yield None  # flushes the resampler's buffered tail


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

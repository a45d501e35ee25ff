from __future__ import annotations

import av
import numpy as np
import pytest

from model.audio import AudioDecodeError, AudioTooLong, iter_audio, load_audio, pcm16_to_float


def _encode(path, codec, rate, channels, seconds=1.0, container=None):
    """Write a 440 Hz tone with PyAV's encoders: every format below, at odd rates and channel counts."""
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        fmt = stream.codec_context.codec.audio_formats[0].name
        frame = av.AudioFrame.from_ndarray(np.tile(tone, (channels, 1)), format="fltp", layout=layout)
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.mark.parametrize(
    ("name", "codec", "rate", "channels", "container"),
    [
        ("a.wav", "pcm_s16le", 44100, 2, None),
        ("a.flac", "flac", 8000, 1, None),
        ("a.mp3", "libmp3lame", 22050, 1, None),
        ("a.ogg", "libopus", 48000, 2, "ogg"),
        ("a.webm", "libopus", 48000, 1, "webm"),
        ("a.m4a", "aac", 32000, 2, "mp4"),
    ],
)
def test_common_formats_decode_to_16k_mono(tmp_path, name, codec, rate, channels, container):
    path = tmp_path / name
    try:
        _encode(path, codec, rate, channels, container=container)
    except (av.FFmpegError, ValueError) as e:  # an encoder missing from this FFmpeg build
        pytest.skip(f"cannot encode {name} here: {e}")
    audio = load_audio(path)
    assert audio.dtype == np.float32
    assert abs(audio.size - 16000) < 2000  # encoder padding varies by codec
    spectrum = np.abs(np.fft.rfft(audio[2000:14000]))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 440) < 10


def test_chunks_are_bounded(tmp_path):
    _encode(tmp_path / "long.wav", "pcm_s16le", 16000, 1, seconds=5)
    chunks = list(iter_audio(tmp_path / "long.wav", chunk_seconds=1.0))
    assert len(chunks) == 5 and all(c.size <= 16000 for c in chunks)


@pytest.mark.parametrize("data", [b"", b"not audio at all", b"RIFF\xff\xff\xff\xffWAVEfmt " + b"\0" * 20])
def test_garbage_is_a_decode_error(data):
    with pytest.raises(AudioDecodeError):
        load_audio(data)


def test_too_long_is_refused(tmp_path):
    _encode(tmp_path / "a.wav", "pcm_s16le", 16000, 1, seconds=3)
    with pytest.raises(AudioTooLong):
        load_audio(tmp_path / "a.wav", max_seconds=1.0)


def test_pcm16():
    assert pcm16_to_float(b"\x00\x80\xff\x7f").tolist() == pytest.approx([-1.0, 32767 / 32768])
    with pytest.raises(AudioDecodeError):
        pcm16_to_float(b"\x00")


def test_declared_hours_are_refused_before_decoding():
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:  # 57 KB that decode to 8 hours at 16 kHz
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(1)
        w.writeframes(np.zeros(8 * 3600, np.int16).tobytes())
    with pytest.raises(AudioTooLong, match="28800 s"):
        next(iter_audio(buf.getvalue(), max_seconds=3600))

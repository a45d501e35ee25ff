from __future__ import annotations

import av
import numpy as np
import pytest

import model.audio as audio_module
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


def _wav(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def test_declared_length_is_refused_before_decoding():
    data = _wav(np.zeros(8000 * 180, np.int16), 8000)  # the header says 3 minutes
    with pytest.raises(AudioTooLong, match="180 s"):
        next(iter_audio(data, max_seconds=60))


PLAYLIST = b"ffconcat version 1.0\nfile speech.wav\n"
SDP = b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 45678 RTP/AVP 0\n"


@pytest.mark.parametrize("data", [PLAYLIST, SDP], ids=["ffconcat", "sdp"])
def test_playlists_and_session_descriptions_are_not_followed(tmp_path, monkeypatch, data):
    # A real file sits where the playlist points; a guessing FFmpeg would open and transcribe it.
    (tmp_path / "speech.wav").write_bytes(_wav(np.full(16000, 1000, np.int16), 16000))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AudioDecodeError, match="not an audio file in a supported format"):
        load_audio(data)


@pytest.mark.parametrize("rate", [1, 100, 7999, 192001])
def test_sample_rates_outside_what_streams_take_are_refused(rate):
    with pytest.raises(AudioDecodeError, match=f"{rate} Hz is not supported"):
        load_audio(_wav(np.zeros(10, np.int16), rate))


def test_one_huge_frame_is_refused(tmp_path):
    # Matroska PCM blocks may be any size; one block of 60 s would be resampled in one call.
    path = tmp_path / "a.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000 * 60), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(AudioDecodeError, match="one audio frame holds 60 s"):
        load_audio(path)


def test_audio_beyond_what_the_file_size_allows_is_refused():
    from model.audio import DecodeLimits

    data = _wav(np.zeros(16000 * 3, np.int16), 16000)  # 96 KB, 3 s
    limits = DecodeLimits(min_bitrate=len(data) * 8 / 2.0, free_seconds=0.5)  # this size may hold 2.5 s
    with pytest.raises(AudioTooLong, match="bits per second of audio"):
        list(iter_audio(data, limits=limits))
    assert sum(c.size for c in iter_audio(data, limits=DecodeLimits(min_bitrate=1000))) == 48000


@pytest.mark.parametrize("channels", [2, 9, 25])
def test_any_channel_count_is_mixed_to_mono(channels):
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.int16)
    audio = load_audio(_wav(np.repeat(tone, channels), 16000, channels))  # the same tone on every channel
    assert audio.size == 16000
    # FFmpeg mixes standard layouts at its own levels (stereo: (L + R) / sqrt 2); wider ones are averaged.
    gain = np.abs(audio).max() / (np.abs(tone).max() / 32768.0)
    assert 0.9 < gain < 1.5
    assert np.allclose(audio / gain, tone / 32768.0, atol=2e-3)


def test_too_many_channels_are_refused_with_the_reason():
    with pytest.raises(AudioDecodeError, match="100 channels"):
        load_audio(_wav(np.zeros(100 * 10, np.int16), 16000, 100))


@pytest.mark.parametrize("chunk_seconds", [0.01, 0.3, 1.0, 7.0])
def test_chunks_join_to_the_whole(tmp_path, chunk_seconds):
    _encode(tmp_path / "a.wav", "pcm_s16le", 16000, 1, seconds=5)
    whole = load_audio(tmp_path / "a.wav")
    chunks = list(iter_audio(tmp_path / "a.wav", chunk_seconds=chunk_seconds))
    size = int(chunk_seconds * 16000)
    assert all(c.size == size for c in chunks[:-1]) and 0 < chunks[-1].size <= size
    assert np.array_equal(np.concatenate(chunks), whole)


def test_cancelled_decoding_stops_between_frames(tmp_path):
    from model.audio import DecodeCancelled

    _encode(tmp_path / "a.wav", "pcm_s16le", 16000, 1, seconds=5)
    with pytest.raises(DecodeCancelled):
        list(iter_audio(tmp_path / "a.wav", cancelled=lambda: True))


@pytest.mark.parametrize(
    ("name", "codec"),
    [("a.wav", "pcm_s16le"), ("b.wav", "pcm_f32le"), ("a.flac", "flac"), ("a.mp3", "libmp3lame")],
)
def test_audio_at_the_model_rate_reads_as_the_resampler_gives_it(tmp_path, monkeypatch, name, codec):
    # Mono frames at 16 kHz in a plain format skip FFmpeg's resampler; the samples must be the same.
    path = tmp_path / name
    try:
        _encode(path, codec, 16000, 1, seconds=2.3)
    except (av.FFmpegError, ValueError) as e:
        pytest.skip(f"cannot encode {name} here: {e}")
    read = [0]
    as_is = audio_module._as_is

    def counted(frame, rate):
        out = as_is(frame, rate)
        read[0] += out is not None
        return out

    monkeypatch.setattr(audio_module, "_as_is", counted)
    direct = load_audio(path)
    monkeypatch.setattr(audio_module, "_as_is", lambda frame, rate: None)
    resampled = load_audio(path)
    assert read[0] > 0  # the fast path was taken
    assert direct.dtype == np.float32
    np.testing.assert_array_equal(direct, resampled)

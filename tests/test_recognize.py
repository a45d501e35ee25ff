from __future__ import annotations

import numpy as np
import torch

from model.audio import load_audio
from model.checkpoint import ModelBundle, load_model
from model.config import NetworkConfig
from model.ctc import Transcript, greedy_decode
from model.features import FbankExtractor
from model.network import SUBSAMPLING, Network
from model.recognize import Recognizer
from model.state import StreamState
from model.tokens import Vocabulary


class LoudnessNetwork(Network):
    """Emits 'a' for each loud 40 ms frame and blank for quiet ones: a scripted acoustic model
    that makes endpointing and timing testable without training anything."""

    def step(self, chunk, state):
        buf = torch.cat([state.pending, chunk], dim=1)
        n = buf.shape[1] // SUBSAMPLING
        frames = buf[:, : n * SUBSAMPLING].reshape(buf.shape[0], n, SUBSAMPLING * buf.shape[2]).mean(dim=2)
        out = torch.full((buf.shape[0], n, self.cfg.vocab_size), -20.0)
        # Loud frames alternate 'a' and blank, so a loud run reads as one word "aaa..." whose first and
        # last letters mark where the sound starts and ends.
        even = (torch.arange(n) + state.frames_out) % 2 == 0
        loud = (frames > 5.0) & even
        out[..., 0] = torch.where(loud, -20.0, 0.0)
        out[..., 3] = torch.where(loud, 0.0, -20.0)  # 'a'
        return out, StreamState(buf[:, n * SUBSAMPLING :], state.hidden, state.cell, state.frames_out + n)


def _scripted_recognizer() -> Recognizer:
    cfg = NetworkConfig(hidden=8, conv_channels=2, depth=1)
    bundle = ModelBundle(LoudnessNetwork(cfg).eval(), load_model().features, Vocabulary())
    return Recognizer(bundle)


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)


def test_pauses_split_segments_with_times_from_stream_start():
    rec = _scripted_recognizer()
    audio = np.concatenate([np.zeros(8000, np.float32), _tone(0.5), np.zeros(16000, np.float32), _tone(0.3)])
    stream = rec.stream()
    segments = []
    for i in range(0, audio.size, 1600):  # 100 ms chunks
        segments += stream.accept(audio[i : i + 1600])
        if not segments:
            assert set(stream.partial()) <= {"a"}
    assert len(segments) == 1  # the first pause closed the first segment while streaming
    segments += stream.finish()
    assert [set(s.text) for s in segments] == [{"a"}, {"a"}]
    assert abs(segments[0].start - 0.5) <= 0.08 and abs(segments[0].end - 1.0) <= 0.08
    assert abs(segments[1].start - 2.0) <= 0.08 and abs(segments[1].end - 2.3) <= 0.08
    assert stream.seconds == audio.size / 16000


def test_silence_holds_no_log_probs():
    rec = _scripted_recognizer()
    stream = rec.stream()
    for _ in range(50):
        assert stream.accept(np.zeros(16000, np.float32)) == []
    assert stream.log_probs == []
    assert stream.finish() == []


def test_stream_equals_offline_network_output(fixtures_dir):
    bundle = load_model()
    rec = Recognizer(bundle)
    audio = load_audio(fixtures_dir / "utt01.flac")
    stream = rec.stream(endpoint_seconds=1e6)  # no endpoint: one segment holds the whole utterance
    for i in range(0, audio.size, 3200):
        stream.accept(audio[i : i + 3200])
    streamed = stream._frames().copy()
    feats = FbankExtractor(bundle.features)(torch.from_numpy(audio))  # training's features, in torch
    with torch.inference_mode():
        whole, _ = bundle.network(feats[None], torch.tensor([feats.shape[0]]))
    assert np.abs(streamed - whole[0].numpy()).max() <= 1e-3  # numpy vs torch features: see test_features
    assert greedy_decode(streamed, bundle.vocab).text == greedy_decode(whole[0], bundle.vocab).text


def _two_sounds() -> np.ndarray:
    return np.concatenate([np.zeros(8000, np.float32), _tone(0.5), np.zeros(16000, np.float32), _tone(0.3)])


def test_segments_come_as_pauses_close_them():
    rec = _scripted_recognizer()
    audio = _two_sounds()
    taken = []

    def chunks():
        for i in range(0, audio.size, 1600):
            taken.append(i)
            yield audio[i : i + 1600]

    segments = rec.iter_segments(chunks())
    first = next(segments)
    assert len(taken) < audio.size // 1600  # the first segment came before the audio ran out
    assert [first, *segments] == rec.transcribe_chunks([audio[i : i + 1600] for i in range(0, audio.size, 1600)])


def test_a_stream_started_later_keeps_its_clock():
    rec = _scripted_recognizer()
    audio = _two_sounds()
    plain, later = rec.stream(), rec.stream(start_seconds=7.25)
    a = [s for i in range(0, audio.size, 1600) for s in plain.accept(audio[i : i + 1600])] + plain.finish()
    b = [s for i in range(0, audio.size, 1600) for s in later.accept(audio[i : i + 1600])] + later.finish()
    assert len(a) == len(b) == 2
    for x, y in zip(a, b, strict=True):
        assert (y.start, y.end) == (round(x.start + 7.25, 3), round(x.end + 7.25, 3))
        assert [(w.start, w.end) for w in y.words] == [(round(w.start + 7.25, 3), round(w.end + 7.25, 3))
                                                       for w in x.words]
    assert later.seconds == 7.25 + audio.size / 16000


def test_segments_carry_the_n_best_when_asked():
    rec = _scripted_recognizer()
    audio = _two_sounds()
    plain = rec.transcribe(audio)
    stream = rec.stream(alternatives=3)
    segments = stream.accept(audio) + stream.finish()
    assert [(s.text, s.words) for s in segments] == [(s.text, s.words) for s in plain]
    assert all(s.alternatives == () for s in plain)  # only when asked
    for s in segments:
        assert len(s.alternatives) == 3  # the beam holds more than three texts: the stream keeps three
        assert s.alternatives[0].transcript == Transcript(s.text, s.words)
        scores = [h.score for h in s.alternatives]
        assert scores == sorted(scores, reverse=True)


class LateNetwork(Network):
    """Like LoudnessNetwork, but each 'a' comes four 40 ms frames after its loud frame, as a CTC model emits
    a word's last letters after they are spoken. The delay line lives in the hidden state."""

    DELAY = 4

    def step(self, chunk, state):
        buf = torch.cat([state.pending, chunk], dim=1)
        n = buf.shape[1] // SUBSAMPLING
        frames = buf[:, : n * SUBSAMPLING].reshape(buf.shape[0], n, SUBSAMPLING * buf.shape[2]).mean(dim=2)
        history = torch.cat([state.hidden[0, 0, : self.DELAY] > 0.5, frames[0] > 5.0])
        even = (torch.arange(n) + state.frames_out) % 2 == 0
        emit = history[:n] & even
        out = torch.full((1, n, self.cfg.vocab_size), -20.0)
        out[..., 0] = torch.where(emit, -20.0, 0.0)
        out[..., 3] = torch.where(emit, 0.0, -20.0)  # 'a'
        hidden = state.hidden.clone()
        hidden[0, 0, : self.DELAY] = history[history.numel() - self.DELAY :].float()
        return out, StreamState(buf[:, n * SUBSAMPLING :], hidden, state.cell, state.frames_out + n)


def test_the_end_of_the_audio_lets_late_letters_out():
    cfg = NetworkConfig(hidden=8, conv_channels=2, depth=1)
    rec = Recognizer(ModelBundle(LateNetwork(cfg).eval(), load_model().features, Vocabulary()))
    audio = np.concatenate([np.zeros(8000, np.float32), _tone(0.4)])  # the sound runs to the very end

    def decode(padding: float):
        stream = rec.stream()
        assert stream.accept(audio) == []
        return stream.finish(padding)

    padded, cut = decode(0.2), decode(0.0)
    assert "".join(s.text for s in padded) == "a" * 5  # one per other frame of the 0.4 s sound
    assert len("".join(s.text for s in cut)) < 5  # without the padding the last ones never came out
    assert padded[-1].end <= audio.size / 16000  # the padding is not audio: times stay inside it

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from model.audio import load_audio
from model.config import FeatureConfig
from model.fbank import Fbank, StreamingFbank
from model.features import FbankExtractor, mel_banks

# Chunked FFTs may differ from the batched one in the last float bits; 1e-4 on log energies is far
# below anything the network can notice.
TOL = 1e-4
# NumPy (serving) against torch (training): both float32, but different FFTs. On log energies the
# difference is ~1e-6 on average; the largest, up to ~2e-3, sit in near-silent frames whose mel
# energies are a few units, where float32 rounding of the FFT is relatively large. The network's
# outputs then differ by less than its own ONNX export does (tests/test_onnx.py).
NUMPY_TORCH_MAX = 5e-3
NUMPY_TORCH_MEAN = 2e-5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_features_equal_whole_utterance(seed):
    rng = random.Random(seed)
    x = (np.random.default_rng(seed).standard_normal(16000 * 3 + rng.randrange(400)) * 0.1).astype(np.float32)
    ext = Fbank()
    whole = ext(x)
    stream = StreamingFbank(ext)
    pieces, i = [], 0
    while i < x.size:
        k = rng.choice([1, 7, 159, 160, 161, 400, 1234, 16000])
        pieces.append(stream.accept(x[i : i + k]))
        i += k
    streamed = np.concatenate(pieces)
    assert streamed.shape == whole.shape
    assert np.allclose(streamed, whole, atol=TOL)


def _numpy_and_torch(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return Fbank()(audio), FbankExtractor()(torch.from_numpy(audio)).numpy()


@pytest.mark.parametrize("scale", [1e-4, 0.1, 1.0])
def test_numpy_features_match_torch_on_random_audio(scale):
    audio = (np.random.default_rng(3).standard_normal(16000 * 2 + 123) * scale).astype(np.float32)
    ours, ref = _numpy_and_torch(audio)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= NUMPY_TORCH_MAX
    assert np.abs(ours - ref).mean() <= NUMPY_TORCH_MEAN


def test_numpy_features_match_torch_on_real_speech(fixtures_dir):
    for clip in sorted(fixtures_dir.glob("utt0*.flac")):
        ours, ref = _numpy_and_torch(load_audio(clip))
        assert ours.shape == ref.shape, clip.name
        assert np.abs(ours - ref).max() <= NUMPY_TORCH_MAX, clip.name
        assert np.abs(ours - ref).mean() <= NUMPY_TORCH_MEAN, clip.name
    silence = np.zeros(4000, np.float32)  # every energy at the floor: exactly equal
    assert np.array_equal(*_numpy_and_torch(silence))


def test_numpy_frame_count_and_shape():
    ext = Fbank()
    assert ext(np.zeros(399, np.float32)).shape == (0, 80)
    assert ext(np.zeros(16000, np.float32)).shape == (98, 80)


def test_frame_count_and_shape():
    ext = FbankExtractor()
    assert ext(torch.zeros(399)).shape == (0, 80)
    assert ext(torch.zeros(400)).shape == (1, 80)
    assert ext(torch.zeros(16000)).shape == (98, 80)  # 1 + (16000 - 400) // 160


def test_tone_energy_lands_in_the_right_mel_bin():
    cfg = FeatureConfig()
    t = torch.arange(16000) / 16000
    low = FbankExtractor(cfg)(0.5 * torch.sin(2 * torch.pi * 300 * t)).mean(0)
    high = FbankExtractor(cfg)(0.5 * torch.sin(2 * torch.pi * 4000 * t)).mean(0)
    assert int(low.argmax()) < 20 < int(high.argmax())


def test_mel_banks_are_triangles_that_cover_the_band():
    banks = mel_banks(FeatureConfig(), 512)
    assert banks.shape == (80, 257)
    assert float(banks.min()) >= 0 and float(banks.max()) <= 1.0
    assert bool((banks.sum(1) > 0).all())
    assert float(banks[:, -1].abs().sum()) == 0.0


def test_matches_kaldi_native_fbank_when_installed():
    knf = pytest.importorskip("kaldi_native_fbank", reason="kaldi-native-fbank is an optional cross-check")
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0
    opts.frame_opts.samp_freq = 16000
    opts.mel_opts.num_bins = 80
    x = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, (x * 32768).tolist())
    fb.input_finished()
    ref = torch.tensor(np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]))
    ours = FbankExtractor()(torch.from_numpy(x))
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-2)

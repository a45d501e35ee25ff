from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from model.config import FeatureConfig
from model.features import FbankExtractor, StreamingFbank, mel_banks

# Chunked FFTs may differ from the batched one in the last float bits; 1e-4 on log energies is far
# below anything the network can notice.
TOL = 1e-4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_features_equal_whole_utterance(seed):
    rng = random.Random(seed)
    x = torch.randn(16000 * 3 + rng.randrange(400)) * 0.1
    ext = FbankExtractor()
    whole = ext(x)
    stream = StreamingFbank(ext)
    pieces, i = [], 0
    while i < x.numel():
        k = rng.choice([1, 7, 159, 160, 161, 400, 1234, 16000])
        pieces.append(stream.accept(x[i : i + k]))
        i += k
    streamed = torch.cat(pieces)
    assert streamed.shape == whole.shape
    assert torch.allclose(streamed, whole, atol=TOL)


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

"""Waveform -> 80-dim log-mel filterbank frames in torch: what training computes, batched on any device.

Serving computes the same numbers in NumPy (``fbank.py``: the mel filters (VTLN warp included), the
window and every audio constant live there, and its ``StreamingFbank`` is the streaming extractor);
this module repeats only the per-frame recipe in torch, and ``tests/test_features.py`` holds the two
to each other.

Why not kaldi-native-fbank: the computation is a few lines, the same code then runs batched on any
device during training, and it removes a compiled dependency from the Raspberry Pi image.
"""

from __future__ import annotations

import torch

from .config import FeatureConfig
from .fbank import INT16_SCALE, fft_size, num_frames, povey_window
from .fbank import mel_banks as _mel_banks


def mel_banks(cfg: FeatureConfig, n_fft: int, warp: float = 1.0) -> torch.Tensor:
    """Kaldi's triangular mel filters: (num_mel_bins, n_fft // 2 + 1), zero at the Nyquist bin.

    ``warp`` != 1 moves the filters' edges by Kaldi's VTLN warp (training-time vocal-tract-length
    perturbation); 1 gives the plain filters, bit for bit.
    """
    return torch.from_numpy(_mel_banks(cfg, n_fft, warp))


class FbankExtractor:
    """Stateless whole-utterance extractor. Call it on a 1-D float waveform in [-1, 1]."""

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        self.cfg = cfg
        self.fft_size = fft_size(cfg)
        self.window = torch.from_numpy(povey_window(cfg.window_size))
        self.banks = mel_banks(cfg, self.fft_size)
        self._warped: dict[float, torch.Tensor] = {}  # VTLP filters by warp factor, made on first use

    def num_frames(self, num_samples: int) -> int:
        return num_frames(self.cfg, num_samples)

    def warped_banks(self, warp: float) -> torch.Tensor:
        """The filters warped by ``warp`` (cached per factor: training draws from a short list of them)."""
        key = round(warp, 4)
        if key not in self._warped:
            self._warped[key] = mel_banks(self.cfg, self.fft_size, key)
        return self._warped[key]

    def __call__(self, waveform: torch.Tensor, warp: float = 1.0) -> torch.Tensor:
        """(num_samples,) float -> (num_frames, num_mel_bins) log-mel energies (``warp``: VTLP, training only)."""
        if waveform.dim() != 1:
            raise ValueError(f"expected a 1-D waveform, got shape {tuple(waveform.shape)}")
        n = self.num_frames(waveform.numel())
        if n == 0:
            return torch.zeros(0, self.cfg.num_mel_bins)
        x = waveform.float() * INT16_SCALE
        frames = x.unfold(0, self.cfg.window_size, self.cfg.window_shift)[:n]  # (T, W)
        frames = frames - frames.mean(dim=1, keepdim=True)
        prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        frames = (frames - self.cfg.preemphasis * prev) * self.window
        spectrum = torch.fft.rfft(frames, n=self.fft_size).abs().pow(2)  # (T, fft/2+1)
        banks = self.banks if warp == 1.0 else self.warped_banks(warp)
        mel = spectrum @ banks.T  # (T, num_mel_bins)
        return mel.clamp_min(self.cfg.energy_floor).log()

"""Waveform -> 80-dim log-mel filterbank frames, whole-utterance and streaming.

Why plain torch and not kaldi-native-fbank: the computation is ~40 lines, the same code then runs
batched on any device during training, and it removes a compiled dependency from the Raspberry Pi
image. It follows Kaldi's fbank recipe (snip_edges=True, Povey window, pre-emphasis, DC removal,
no dither at inference) so that frame t depends only on samples [t*160, t*160+400): that makes the
streaming extractor exact by construction, not approximately equal.
"""

from __future__ import annotations

import math

import torch

from .config import FeatureConfig

# Kaldi scales audio as 16-bit integers; doing the same keeps our log energies comparable with
# Kaldi's tools (the per-model normalisation removes the offset either way).
INT16_SCALE = 32768.0


def _mel(freq: torch.Tensor | float) -> torch.Tensor | float:
    if isinstance(freq, torch.Tensor):
        return 1127.0 * torch.log1p(freq / 700.0)
    return 1127.0 * math.log1p(freq / 700.0)


def _inverse_mel(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * torch.expm1(mel / 1127.0)


# Kaldi's VTLN cut-offs: the warp is linear between them and bends to keep low_freq and high_freq fixed.
VTLN_LOW, VTLN_HIGH = 100.0, -500.0  # Hz; a negative high cut-off is relative to the Nyquist frequency


def vtln_warp(freq: torch.Tensor, factor: float, low: float, high: float, nyquist: float) -> torch.Tensor:
    """Kaldi's piecewise-linear VTLN frequency warp (VtlnWarpFreq): f -> f / factor in the middle."""
    lo = VTLN_LOW * max(1.0, factor)
    hi = (nyquist + VTLN_HIGH) * min(1.0, factor)
    scale = 1.0 / factor
    f_lo, f_hi = scale * lo, scale * hi
    left = low + (f_lo - low) / (lo - low) * (freq - low)
    right = high + (high - f_hi) / (high - hi) * (freq - high)
    return torch.where(freq < lo, left, torch.where(freq < hi, scale * freq, right))


def mel_banks(cfg: FeatureConfig, fft_size: int, warp: float = 1.0) -> torch.Tensor:
    """Kaldi's triangular mel filters: (num_mel_bins, fft_size // 2 + 1), zero at the Nyquist bin.

    ``warp`` != 1 moves the filters' edges by Kaldi's VTLN warp (training-time vocal-tract-length
    perturbation); 1 gives the plain filters, bit for bit.
    """
    nyquist = cfg.sample_rate / 2
    high = cfg.high_freq if cfg.high_freq > 0 else nyquist + cfg.high_freq
    mel_low, mel_high = _mel(cfg.low_freq), _mel(high)
    delta = (mel_high - mel_low) / (cfg.num_mel_bins + 1)
    bins = torch.arange(cfg.num_mel_bins, dtype=torch.float64).unsqueeze(1)
    left, center, right = mel_low + bins * delta, mel_low + (bins + 1) * delta, mel_low + (bins + 2) * delta
    if warp != 1.0:
        left, center, right = (_mel(vtln_warp(_inverse_mel(m), warp, cfg.low_freq, high, nyquist))
                               for m in (left, center, right))
    freqs = torch.arange(fft_size // 2, dtype=torch.float64) * cfg.sample_rate / fft_size
    mel = _mel(freqs).unsqueeze(0)  # (1, fft_size // 2)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    banks = torch.nn.functional.pad(banks, (0, 1))  # the Nyquist bin gets no weight, as in Kaldi
    return banks.float()


class FbankExtractor:
    """Stateless whole-utterance extractor. Call it on a 1-D float waveform in [-1, 1]."""

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        self.cfg = cfg
        self.fft_size = 1 << (cfg.window_size - 1).bit_length()
        self.window = torch.hann_window(cfg.window_size, periodic=False, dtype=torch.float64).pow(0.85).float()
        self.banks = mel_banks(cfg, self.fft_size)

    def num_frames(self, num_samples: int) -> int:
        if num_samples < self.cfg.window_size:
            return 0
        return 1 + (num_samples - self.cfg.window_size) // self.cfg.window_shift

    def warped_banks(self, warp: float) -> torch.Tensor:
        """The filters warped by ``warp`` (cached per factor: training draws from a short list of them)."""
        key = round(warp, 4)
        cache = self.__dict__.setdefault("_warped", {})
        if key not in cache:
            cache[key] = mel_banks(self.cfg, self.fft_size, key)
        return cache[key]

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


class StreamingFbank:
    """Feeds on chunks of any size and returns exactly the frames of the whole-utterance extractor.

    It keeps the samples that the next frame still needs (at most one window) as explicit state.
    """

    def __init__(self, extractor: FbankExtractor) -> None:
        self.extractor = extractor
        self.pending = torch.zeros(0)

    def accept(self, chunk: torch.Tensor) -> torch.Tensor:
        buf = torch.cat([self.pending, chunk.float().reshape(-1)])
        n = self.extractor.num_frames(buf.numel())
        if n == 0:
            self.pending = buf
            return torch.zeros(0, self.extractor.cfg.num_mel_bins)
        consumed = n * self.extractor.cfg.window_shift
        used = (n - 1) * self.extractor.cfg.window_shift + self.extractor.cfg.window_size
        feats = self.extractor(buf[:used])
        self.pending = buf[consumed:]
        return feats

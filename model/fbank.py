"""The Kaldi-compatible log-mel filterbank in NumPy: what serving computes, with or without torch.

``features.FbankExtractor`` computes the same numbers in torch for training (batched, on any
device); both take their mel filters and window from here, so only the few lines of the per-frame
recipe exist twice, and ``tests/test_features.py`` holds them to each other on real and random audio.

The recipe is Kaldi's fbank (snip_edges=True, Povey window, pre-emphasis, DC removal, no dither at
inference): frame t depends only on samples [t*160, t*160+400), which makes ``StreamingFbank``
exact by construction, whatever the chunk size.
"""

from __future__ import annotations

import math

import numpy as np

from .config import FeatureConfig

# Kaldi scales audio as 16-bit integers; doing the same keeps our log energies comparable with
# Kaldi's tools (the per-model normalisation removes the offset either way).
INT16_SCALE = 32768.0
POVEY_EXPONENT = 0.85  # Kaldi's "povey" window: a Hann window raised to 0.85, never quite zero inside


def _mel(freq: np.ndarray | float) -> np.ndarray | float:
    if isinstance(freq, np.ndarray):
        return 1127.0 * np.log1p(freq / 700.0)
    return 1127.0 * math.log1p(freq / 700.0)


def _inverse_mel(mel: np.ndarray) -> np.ndarray:
    return 700.0 * np.expm1(mel / 1127.0)


# Kaldi's VTLN cut-offs: the warp is linear between them and bends to keep low_freq and high_freq fixed.
VTLN_LOW, VTLN_HIGH = 100.0, -500.0  # Hz; a negative high cut-off is relative to the Nyquist frequency


def vtln_warp(freq: np.ndarray, factor: float, low: float, high: float, nyquist: float) -> np.ndarray:
    """Kaldi's piecewise-linear VTLN frequency warp (VtlnWarpFreq): f -> f / factor in the middle."""
    lo = VTLN_LOW * max(1.0, factor)
    hi = (nyquist + VTLN_HIGH) * min(1.0, factor)
    scale = 1.0 / factor
    f_lo, f_hi = scale * lo, scale * hi
    left = low + (f_lo - low) / (lo - low) * (freq - low)
    right = high + (high - f_hi) / (high - hi) * (freq - high)
    return np.where(freq < lo, left, np.where(freq < hi, scale * freq, right))


def fft_size(cfg: FeatureConfig) -> int:
    return 1 << (cfg.window_size - 1).bit_length()


def mel_banks(cfg: FeatureConfig, n_fft: int, warp: float = 1.0) -> np.ndarray:
    """Kaldi's triangular mel filters: float32 (num_mel_bins, n_fft // 2 + 1), zero at the Nyquist bin.

    ``warp`` != 1 moves the filters' edges by Kaldi's VTLN warp (training-time vocal-tract-length
    perturbation); 1 gives the plain filters, bit for bit.
    """
    nyquist = cfg.sample_rate / 2
    high = cfg.high_freq if cfg.high_freq > 0 else nyquist + cfg.high_freq
    mel_low, mel_high = _mel(cfg.low_freq), _mel(high)
    delta = (mel_high - mel_low) / (cfg.num_mel_bins + 1)
    bins = np.arange(cfg.num_mel_bins, dtype=np.float64)[:, None]
    left, center, right = mel_low + bins * delta, mel_low + (bins + 1) * delta, mel_low + (bins + 2) * delta
    if warp != 1.0:
        left, center, right = (_mel(vtln_warp(_inverse_mel(m), warp, cfg.low_freq, high, nyquist))
                               for m in (left, center, right))
    freqs = np.arange(n_fft // 2, dtype=np.float64) * cfg.sample_rate / n_fft
    mel = _mel(freqs)[None, :]  # (1, n_fft // 2)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = np.clip(np.minimum(up, down), 0.0, None)
    banks = np.pad(banks, ((0, 0), (0, 1)))  # the Nyquist bin gets no weight, as in Kaldi
    return banks.astype(np.float32)


def povey_window(size: int) -> np.ndarray:
    n = np.arange(size, dtype=np.float64)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / (size - 1))  # symmetric (periodic=False)
    return (hann**POVEY_EXPONENT).astype(np.float32)


def num_frames(cfg: FeatureConfig, num_samples: int) -> int:
    if num_samples < cfg.window_size:
        return 0
    return 1 + (num_samples - cfg.window_size) // cfg.window_shift


class Fbank:
    """Stateless whole-utterance extractor on a 1-D float waveform in [-1, 1]."""

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        self.cfg = cfg
        self.fft_size = fft_size(cfg)
        self.window = povey_window(cfg.window_size)
        self.banks_t = np.ascontiguousarray(mel_banks(cfg, self.fft_size).T)  # (fft/2+1, num_mel_bins)

    def num_frames(self, num_samples: int) -> int:
        return num_frames(self.cfg, num_samples)

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        """(num_samples,) float -> float32 (num_frames, num_mel_bins) log-mel energies."""
        waveform = np.asarray(waveform)
        if waveform.ndim != 1:
            raise ValueError(f"expected a 1-D waveform, got shape {waveform.shape}")
        n = self.num_frames(waveform.size)
        if n == 0:
            return np.zeros((0, self.cfg.num_mel_bins), np.float32)
        x = waveform.astype(np.float32) * np.float32(INT16_SCALE)
        frames = np.lib.stride_tricks.sliding_window_view(x, self.cfg.window_size)[:: self.cfg.window_shift][:n]
        frames = frames - frames.mean(axis=1, keepdims=True)  # (T, W)
        prev = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
        frames = (frames - np.float32(self.cfg.preemphasis) * prev) * self.window
        spectrum = np.abs(np.fft.rfft(frames, n=self.fft_size)) ** 2  # (T, fft/2+1), float32 in NumPy >= 2
        mel = spectrum.astype(np.float32, copy=False) @ self.banks_t  # (T, num_mel_bins)
        return np.log(np.maximum(mel, np.float32(self.cfg.energy_floor)))


class StreamingFbank:
    """Feeds on chunks of any size and returns exactly the frames of the whole-utterance extractor.

    It keeps the samples that the next frame still needs (at most one window) as explicit state.
    """

    def __init__(self, extractor: Fbank) -> None:
        self.extractor = extractor
        self.pending = np.zeros(0, np.float32)

    def accept(self, chunk: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self.pending, np.asarray(chunk, dtype=np.float32).reshape(-1)])
        n = self.extractor.num_frames(buf.size)
        if n == 0:
            self.pending = buf
            return np.zeros((0, self.extractor.cfg.num_mel_bins), np.float32)
        cfg = self.extractor.cfg
        feats = self.extractor(buf[: (n - 1) * cfg.window_shift + cfg.window_size])
        self.pending = buf[n * cfg.window_shift :]
        return feats

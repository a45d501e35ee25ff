"""On-the-fly augmentation: speed, reverberation, additive noise and loudness on the waveform;
SpecAugment on features.

Every function takes an explicit ``numpy.random.Generator``: the data loader seeds one per
utterance from (seed, epoch, batch, position), so a resumed run draws exactly the same augmentation
as an uninterrupted one, whichever worker process happens to load the utterance.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import AugmentConfig


def speed_perturb(wave: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch moves with it, as in Kaldi's sox-based recipe).

    Linear interpolation is a crude resampler: speeding up by 1.1 folds 7.3-8 kHz back into the
    band. Speech has little energy there and the mel filters smear it anyway, and it costs a
    fraction of a polyphase filter, which matters when every epoch resamples on 2 cores.
    """
    if factor == 1.0 or wave.size < 2:
        return wave
    n_out = max(1, int(round(wave.size / factor)))
    positions = np.arange(n_out, dtype=np.float64) * factor
    return np.interp(positions, np.arange(wave.size), wave).astype(np.float32)


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Coloured Gaussian noise at ``snr_db`` below the utterance's power.

    The colour (white, pink or brown: spectral slope 0, -1 or -2) is drawn per utterance, so the
    model meets hiss as well as rumble-like noise without a noise corpus.
    """
    if wave.size == 0:
        return wave
    power = float(np.mean(wave.astype(np.float64) ** 2))
    if power <= 0.0:
        return wave
    white = rng.standard_normal(wave.size)
    slope = rng.choice([0.0, 1.0, 2.0])
    if slope:
        spec = np.fft.rfft(white)
        freqs = np.arange(spec.size, dtype=np.float64)
        freqs[0] = 1.0
        spec /= freqs ** (slope / 2)  # power spectrum ~ f^-slope
        white = np.fft.irfft(spec, n=wave.size)
    noise_power = float(np.mean(white**2)) or 1.0
    scale = np.sqrt(power / (noise_power * 10 ** (snr_db / 10)))
    return (wave + scale * white).astype(np.float32)


def synthetic_rir(rt60: float, drr_db: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response without a room corpus: the direct path (1.0), then Gaussian noise that
    decays by 60 dB in ``rt60`` seconds (Polack's statistical model of late reverberation, as in
    synthetic-RIR augmentation), its energy ``drr_db`` below the direct path's."""
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    rir = rng.standard_normal(n) * np.exp(-np.log(1000.0) * t / rt60)  # amplitude: -60 dB at rt60
    rir[0] = 0.0
    rir *= np.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(rir**2)), 1e-12))
    rir[0] = 1.0
    return rir


def reverberate(wave: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with ``rir`` (FFT), keep the utterance's length and power: loudness is gain's job."""
    if wave.size == 0:
        return wave
    n = wave.size + rir.size - 1
    nfft = 1 << (n - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(wave, nfft) * np.fft.rfft(rir, nfft), nfft)[: wave.size]
    power_in = float(np.mean(wave.astype(np.float64) ** 2))
    power_out = float(np.mean(wet**2))
    if power_out > 0.0:
        wet *= np.sqrt(power_in / power_out)
    return wet.astype(np.float32)


def change_gain(wave: np.ndarray, gain_db: float) -> np.ndarray:
    # Clipping is what a too-loud microphone does, so it is part of the augmentation, not a bug.
    return np.clip(wave * 10 ** (gain_db / 20), -1.0, 1.0).astype(np.float32)


def augment_waveform(wave: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator,
                     sample_rate: int = 16000) -> np.ndarray:
    """Speed, reverberation, noise, then gain: the voice is sped up and reverberates in the room,
    noise is added to what the microphone hears, and the mix is what gets louder. A switched-off
    kind draws no random numbers, so runs made before a kind existed replay exactly."""
    if cfg.speed and rng.random() < cfg.speed_prob:
        wave = speed_perturb(wave, float(rng.choice(cfg.speed_factors)))
    if cfg.reverb and rng.random() < cfg.reverb_prob:
        rir = synthetic_rir(float(rng.uniform(*cfg.reverb_rt60)), float(rng.uniform(*cfg.reverb_drr_db)),
                            sample_rate, rng)
        wave = reverberate(wave, rir)
    if cfg.noise and rng.random() < cfg.noise_prob:
        wave = add_noise(wave, float(rng.uniform(*cfg.noise_snr_db)), rng)
    if cfg.gain and rng.random() < cfg.gain_prob:
        wave = change_gain(wave, float(rng.uniform(*cfg.gain_db)))
    return wave


def spec_augment(features: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """(T, F) log-mels -> masked copy. Masks take the utterance's mean value.

    The mean, not zero: the network normalises features itself (per-model statistics), so a raw
    zero would be a very loud or very quiet band rather than "no information".
    """
    if not cfg.specaugment or rng.random() >= cfg.specaugment_prob or features.shape[0] == 0:
        return features
    x = features.clone()
    t, f = x.shape
    fill = x.mean()
    for _ in range(cfg.freq_masks):
        width = int(rng.integers(0, cfg.freq_mask_width + 1))
        if 0 < width < f:
            start = int(rng.integers(0, f - width + 1))
            x[:, start : start + width] = fill
    max_width = min(cfg.time_mask_frames, int(cfg.time_mask_max_fraction * t))
    for _ in range(cfg.time_masks):
        width = int(rng.integers(0, max_width + 1)) if max_width > 0 else 0
        if 0 < width < t:
            start = int(rng.integers(0, t - width + 1))
            x[start : start + width, :] = fill
    return x

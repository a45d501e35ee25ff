"""On-the-fly augmentation: speed, reverberation, babble, additive noise, microphone colouring,
loudness and lossy codecs on the waveform; vocal-tract-length perturbation and SpecAugment on features.

Every function takes an explicit ``numpy.random.Generator``: the data loader seeds one per
utterance from (seed, epoch, batch, position), so a resumed run draws exactly the same augmentation
as an uninterrupted one, whichever worker process happens to load the utterance.
"""

from __future__ import annotations

import io
from collections.abc import Callable

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


def colour(wave: np.ndarray, max_db: float, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """A microphone's frequency response: a smooth random gain curve (6 control points spaced on a log
    frequency axis from 100 Hz to Nyquist, each within +-``max_db``), applied by FFT; power is kept."""
    if wave.size < 2:
        return wave
    spec = np.fft.rfft(wave.astype(np.float64))
    freqs = np.fft.rfftfreq(wave.size, 1.0 / sample_rate)
    knots = np.geomspace(100.0, sample_rate / 2, 6)
    gains_db = rng.uniform(-max_db, max_db, size=knots.size)
    curve = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(knots), gains_db)  # flat beyond the ends
    coloured = np.fft.irfft(spec * 10 ** (curve / 20), n=wave.size)
    power_in, power_out = float(np.mean(wave.astype(np.float64) ** 2)), float(np.mean(coloured**2))
    if power_out > 0.0:
        coloured *= np.sqrt(power_in / power_out)
    return coloured.astype(np.float32)


def add_babble(wave: np.ndarray, others: list[np.ndarray], snr_db: float) -> np.ndarray:
    """Other talkers (each looped or cut to the utterance's length, summed) ``snr_db`` below the speech."""
    power = float(np.mean(wave.astype(np.float64) ** 2))
    others = [o for o in others if o.size and float(np.mean(o.astype(np.float64) ** 2)) > 0.0]
    if wave.size == 0 or power <= 0.0 or not others:
        return wave
    mix = sum(np.resize(o.astype(np.float64), wave.size) for o in others)
    scale = np.sqrt(power / (float(np.mean(mix**2)) * 10 ** (snr_db / 10)))
    return (wave + scale * mix).astype(np.float32)


CODECS = ("opus", "mp3", "telephone")


def codec_round_trip(wave: np.ndarray, codec: str, kbps: int, sample_rate: int = 16000) -> np.ndarray:
    """Encode and decode in memory as the real sets were recorded: Opus or MP3 at ``kbps``, or the
    8 kHz telephone band in mu-law. The result keeps the input's length (codec delay is trimmed by the
    decoders; any remainder is cut or zero-padded at the end)."""
    import av

    from model.audio import load_audio

    if wave.size == 0:
        return wave
    rate = 8000 if codec == "telephone" else sample_rate
    fmt, name, options = {"opus": ("ogg", "libopus", {}), "mp3": ("mp3", "libmp3lame", {}),
                          "telephone": ("wav", "pcm_mulaw", {})}[codec]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(name, rate=rate, layout="mono", options=options)
        if codec != "telephone":
            stream.bit_rate = kbps * 1000
        resampler = av.AudioResampler(format=stream.codec_context.codec.audio_formats[0].name, layout="mono",
                                      rate=rate)
        frame = av.AudioFrame.from_ndarray(np.clip(wave, -1, 1).astype(np.float32).reshape(1, -1), format="flt",
                                           layout="mono")
        frame.sample_rate = sample_rate
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    decoded = load_audio(buf.getvalue(), sample_rate)
    if decoded.size >= wave.size:
        return decoded[: wave.size].astype(np.float32)
    return np.concatenate([decoded, np.zeros(wave.size - decoded.size, np.float32)])


# Other utterances for babble: given the generator and how many, returns their waveforms.
Talkers = Callable[[np.random.Generator, int], list[np.ndarray]]


def augment_waveform(wave: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator,
                     sample_rate: int = 16000, talkers: Talkers | None = None,
                     rooms: list[np.ndarray] | None = None) -> np.ndarray:
    """Speed, reverberation, babble, noise, microphone colouring, gain, then a codec: the voice is sped
    up and reverberates in the room among other talkers, noise is added to what the microphone hears
    through its own response, the mix is what gets louder, and the recording is what gets encoded.
    A switched-off kind draws no random numbers, so runs made before a kind existed replay exactly."""
    if cfg.speed and rng.random() < cfg.speed_prob:
        wave = speed_perturb(wave, float(rng.choice(cfg.speed_factors)))
    if cfg.reverb and rng.random() < cfg.reverb_prob:
        if rooms and rng.random() < 0.5:
            rir = rooms[int(rng.integers(0, len(rooms)))]
        else:
            rir = synthetic_rir(float(rng.uniform(*cfg.reverb_rt60)), float(rng.uniform(*cfg.reverb_drr_db)),
                                sample_rate, rng)
        wave = reverberate(wave, rir)
    if cfg.babble and talkers is not None and rng.random() < cfg.babble_prob:
        count = int(rng.integers(cfg.babble_talkers[0], cfg.babble_talkers[1] + 1))
        wave = add_babble(wave, talkers(rng, count), float(rng.uniform(*cfg.babble_snr_db)))
    if cfg.noise and rng.random() < cfg.noise_prob:
        wave = add_noise(wave, float(rng.uniform(*cfg.noise_snr_db)), rng)
    if cfg.eq and rng.random() < cfg.eq_prob:
        wave = colour(wave, cfg.eq_db, rng, sample_rate)
    if cfg.gain and rng.random() < cfg.gain_prob:
        wave = change_gain(wave, float(rng.uniform(*cfg.gain_db)))
    if cfg.lossy and rng.random() < cfg.lossy_prob:
        codec = str(rng.choice(CODECS))
        wave = codec_round_trip(wave, codec, int(rng.integers(cfg.lossy_kbps[0], cfg.lossy_kbps[1] + 1)), sample_rate)
    return wave


def load_rirs(folder: str, sample_rate: int = 16000) -> list[np.ndarray]:
    """Measured room impulse responses from ``folder``/*.wav: mono at ``sample_rate``, trimmed to start at
    their direct path (the peak) and to the first second after it, scaled so the direct path is 1."""
    from pathlib import Path

    from model.audio import load_audio

    rirs = []
    for path in sorted(Path(folder).glob("*.wav")):
        rir = load_audio(path, sample_rate).astype(np.float64)
        peak = int(np.argmax(np.abs(rir)))
        rir = rir[peak : peak + sample_rate]
        if rir.size and rir[0] != 0.0:
            rirs.append(rir / rir[0])
    if not rirs:
        raise ValueError(f"no impulse responses (*.wav) in {folder}")
    return rirs


def vtlp_factor(cfg: AugmentConfig, rng: np.random.Generator) -> float:
    """The filterbank warp for one utterance: 1 (none) or a factor from ``vtlp_range`` in steps of 0.02,
    so that the extractor's cache of warped filters stays small."""
    if not cfg.vtlp or rng.random() >= cfg.vtlp_prob:
        return 1.0
    low, high = cfg.vtlp_range
    return float(np.round(rng.uniform(low, high) / 0.02) * 0.02)


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

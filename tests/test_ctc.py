"""CTC decoding: greedy and beam agree on clear audio, the LM and hotwords fix ambiguous audio,
streaming equals whole-segment decoding, and beam results carry word timings and confidences."""

from __future__ import annotations

import math

import pytest
import torch
from ctc_fixtures import LM_TEXT, VOCAB, frames, spell

from model.config import DecodingConfig
from model.ctc import FRAME_SECONDS, BeamSearch, greedy_decode
from model.grammar import Grammar, lexicon
from model.lm import BuildConfig, NgramLM, build_lm

# 'c' is heard as 'k' slightly more than as 'c'.
AMBIGUOUS = {"c": {"k": 0.5, "c": 0.4}}


@pytest.fixture(scope="module")
def lm() -> NgramLM:
    return NgramLM(build_lm(LM_TEXT, BuildConfig(order=3)))


def test_beam_equals_greedy_on_clear_audio():
    lp = spell("hello world")  # the double l needs the blank between its frames
    greedy = greedy_decode(lp, VOCAB)
    assert greedy.text == "hello world"
    assert BeamSearch(VOCAB).decode(lp) == greedy  # same words, times and confidences


def test_beam_with_lm_beats_greedy_on_ambiguous_audio(lm):
    lp = spell("the cat sat on the mat", AMBIGUOUS)
    assert greedy_decode(lp, VOCAB).text == "the kat sat on the mat"
    assert BeamSearch(VOCAB).decode(lp).text == "the kat sat on the mat"  # no LM: the audio decides
    assert BeamSearch(VOCAB, DecodingConfig(), lm).decode(lp).text == "the cat sat on the mat"
    with_lexicon = BeamSearch(VOCAB, DecodingConfig(lm_weight=0.0), None, lexicon(lm.words(), VOCAB))
    assert with_lexicon.decode(lp).text == "the cat sat on the mat"  # "kat" is not a word


def test_lm_weight_zero_leaves_the_audio_in_charge(lm):
    lp = spell("the cat sat", AMBIGUOUS)
    cfg = DecodingConfig(lm_weight=0.0, word_bonus=0.0)
    assert BeamSearch(VOCAB, cfg, lm).decode(lp).text == "the kat sat"


def test_lm_chooses_between_homophones(lm):
    # "there" / "their": the audio cannot tell (e vs i, r vs nothing); the LM can.
    spec = ["_", "t", "_", "h", "_", "e", "_", {"i": 0.46, "r": 0.44}, "_", {"r": 0.46, "e": 0.44}, "_",
            " ", "_", "i", "_", "s", "_", " ", "_", "a", "_", " ", "_", "c", "_", "a", "_", "t", "_"]
    lp = frames(spec)
    assert greedy_decode(lp, VOCAB).text == "their is a cat"
    assert BeamSearch(VOCAB, DecodingConfig(), lm).decode(lp).text == "there is a cat"


def test_hotword_boosting_still_works():
    lp = spell("call kate now", {"k": {"c": 0.5, "k": 0.4}})
    assert BeamSearch(VOCAB).decode(lp).text == "call cate now"
    cfg = DecodingConfig(hotwords=("kate",), hotword_bonus=1.0)
    assert BeamSearch(VOCAB, cfg).decode(lp).text == "call kate now"


def test_beam_results_carry_word_timings_and_confidences(lm):
    lp = spell("the cat sat", AMBIGUOUS)
    offset = 100
    t = BeamSearch(VOCAB, DecodingConfig(), lm).decode(lp, frame_offset=offset)
    assert [w.word for w in t.words] == ["the", "cat", "sat"]
    # spell(): frame 0 is blank, character i is at frame 2i + 1.
    starts = [(offset + 2 * i + 1) * FRAME_SECONDS for i in (0, 4, 8)]
    ends = [(offset + 2 * i + 2) * FRAME_SECONDS for i in (2, 6, 10)]
    assert [w.start for w in t.words] == pytest.approx(starts)
    assert [w.end for w in t.words] == pytest.approx(ends)
    assert t.words[0].confidence == pytest.approx(0.9, abs=1e-3)
    assert t.words[1].confidence == pytest.approx((0.4 + 0.9 + 0.9) / 3, abs=1e-3)  # the doubtful 'c' shows


def test_streaming_in_chunks_equals_whole_segment(lm):
    lp = spell("turn on the light and the cat sat on the mat", AMBIGUOUS)
    search = BeamSearch(VOCAB, DecodingConfig(beam_size=6), lm)
    whole = search.decode(lp, frame_offset=7)
    state = search.start()
    partials = []
    for chunk in lp.split(5):  # 5 frames = 200 ms
        search.advance(state, chunk)
        partials.append(search.best(state, final=False).text)
    assert search.best(state, frame_offset=7) == whole
    assert partials[-1] == whole.text and partials[2].startswith("turn")


def test_empty_and_silent_input():
    assert BeamSearch(VOCAB).decode(torch.zeros(0, len(VOCAB))).text == ""
    assert BeamSearch(VOCAB).decode(frames(["_"] * 10)).text == ""


def test_lm_does_not_glue_words_into_one_unknown_word(monkeypatch):
    # Every space is heard as 'x': greedy glues the words. With rare words mapped to <unk>, <unk> is
    # likelier than most words, and without a penalty for a partial word that no vocabulary word
    # starts with, the beam keeps the glued word (one <unk> costs less than four words' LM scores).
    lm = NgramLM(build_lm(LM_TEXT, BuildConfig(order=3, min_word_count=2)))
    lp = spell("turn on the light", {" ": {"x": 0.5, " ": 0.4}})
    assert greedy_decode(lp, VOCAB).text == "turnxonxthexlight"
    cfg = DecodingConfig(word_bonus=0.0)  # no bonus to pay for the extra words either
    assert BeamSearch(VOCAB, cfg, lm).decode(lp).text == "turn on the light"
    monkeypatch.setattr(lm, "oov_penalty", 0.0)
    assert BeamSearch(VOCAB, cfg, lm).decode(lp).text == "turnxonxthexlight"


@pytest.mark.parametrize("word_bonus", [0.0, 1.0, 2.5, 5.0])
def test_skipping_hopeless_extensions_changes_no_result(lm, word_bonus, monkeypatch):
    # The search never makes an extension that its score bounds say cannot make the beam (a letter
    # never raises a prefix's external score, a space by at most the word bonus). On noisy, flat
    # posteriors (many live prefixes) that must give exactly what trying every extension gives.
    gen = torch.Generator().manual_seed(0)
    cfg = DecodingConfig(beam_size=4, lm_weight=0.7, word_bonus=word_bonus)
    for trial in range(16):
        lp = spell("the cat sat on the mat there is a dog", AMBIGUOUS)
        lp = (lp + 2.0 * torch.randn(lp.shape, generator=gen)).log_softmax(-1)
        result = BeamSearch(VOCAB, cfg, lm).decode(lp)
        with monkeypatch.context() as m:
            m.setattr(BeamSearch, "_max_gain", lambda self: float("inf"))
            full = BeamSearch(VOCAB, cfg, lm).decode(lp)
        assert result == full, trial


def test_nbest_ranks_distinct_texts_and_its_first_is_the_best(lm):
    lp = spell("the cat sat", AMBIGUOUS)
    for search in (BeamSearch(VOCAB), BeamSearch(VOCAB, DecodingConfig(), lm)):
        state = search.advance(search.start(), lp)
        hypotheses = search.nbest(state, 5, frame_offset=3)
        texts = [h.transcript.text for h in hypotheses]
        assert 1 < len(hypotheses) <= 5 and len(set(texts)) == len(texts)
        assert hypotheses[0].transcript == search.best(state, frame_offset=3)
        scores = [h.score for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        assert {"the cat sat", "the kat sat"} <= set(texts)  # the doubtful 'c' is the runner-up
        assert search.nbest(state, 1, frame_offset=3) == hypotheses[:1]
    # Without an LM the score is the CTC log-probability of the text (every path that spells it).
    k, c = hypotheses_of(BeamSearch(VOCAB), lp, "the kat sat", "the cat sat")
    assert k - c == pytest.approx(math.log(0.5 / 0.4), abs=1e-3)


def hypotheses_of(search: BeamSearch, lp: torch.Tensor, *texts: str) -> list[float]:
    scores = {h.transcript.text: h.score for h in search.nbest(search.advance(search.start(), lp), 8)}
    return [scores[t] for t in texts]


def test_nbest_under_a_grammar_gives_each_phrase_once():
    search = BeamSearch(VOCAB, DecodingConfig(), None, Grammar(["yes", "yet", "[unk]"], VOCAB))
    state = search.advance(search.start(), spell("yes", {"s": {"s": 0.5, "t": 0.4}}))
    # The beam holds "yes" and "yes " (one text), and several spellings that are not listed: "[unk]" once.
    assert [h.transcript.text for h in search.nbest(state, 8)] == ["yes", "yet", "[unk]"]

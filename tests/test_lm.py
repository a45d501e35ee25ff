"""The n-gram LM: Kneser-Ney probabilities by hand, normalisation after pruning, file round trips, CLI."""

from __future__ import annotations

import math

import pytest

from edgescribe.cli import main
from model.lm import (
    DEFAULT_LM,
    EOS,
    BuildConfig,
    LMError,
    NgramLM,
    build_lm,
    load_default_lm,
    load_lm,
    perplexity,
    read_arpa,
    write_arpa,
)

TINY = [s.split() for s in ["a b", "a b", "a c"]]
TEXT = [s.split() for s in [
    "the cat sat on the mat", "the dog sat on the log", "a cat ran", "the cat ran to the dog",
    "a dog sat", "the mat was red", "the log was on the mat", "turn on the light", "turn off the light",
    "the cat sat", "the dog ran", "on the mat the cat sat",
]]


def _sum_over_vocab(lm: NgramLM, history: list[str]) -> float:
    return sum(math.exp(lm.score(history, w)) for w in lm.vocab if w != "<s>")


def test_bigram_probabilities_match_kneser_ney_by_hand():
    # Counts of counts are too few here, so the discounts are the fallback D1, D2, D3+ = 0.5, 1, 1.5.
    # Unigram continuation counts: a 1 (<s>), b 1 (a), c 1 (a), </s> 2 (b, c); total 5; the discounts
    # leave gamma = (3 * 0.5 + 1) / 5 = 0.5 for the uniform 1/5 (five words other than <s>, <unk> one).
    lm = NgramLM(build_lm(TINY, BuildConfig(order=2)))
    assert math.exp(lm.score([], "a")) == pytest.approx(0.6)  # <s> a: raw count 3: (3 - 1.5) / 3 + 0.5 * 0.2
    assert math.exp(lm.score(["a"], "b")) == pytest.approx(1 / 3 + 0.1)  # (2 - 1) / 3 + 0.5 * 0.2
    assert math.exp(lm.score(["a"], "c")) == pytest.approx(0.5 / 3 + 0.1)  # (1 - 0.5) / 3 + 0.5 * 0.2
    assert math.exp(lm.score(["a"], EOS)) == pytest.approx(0.5 * 0.3)  # unseen: backoff 0.5 x unigram 0.3
    assert math.exp(lm.score(["b"], EOS)) == pytest.approx(0.5 + 0.5 * 0.3)
    # An unknown word: <unk>'s share, and the decoding penalty for being outside the vocabulary.
    assert math.exp(lm.score(["a"], "zebra") - lm.oov_penalty) == pytest.approx(0.5 * 0.1)
    assert lm.score(["a"], "zebra") < lm.score(["a"], "c")
    ppl = perplexity(lm, [["a", "b"]])
    assert ppl.perplexity == pytest.approx(math.exp(-(math.log(0.6) + math.log(1 / 3 + 0.1) + math.log(0.65)) / 3))


@pytest.mark.parametrize("cfg", [
    BuildConfig(order=3),
    BuildConfig(order=3, min_counts=(1, 2, 2)),
    BuildConfig(order=3, entropy_threshold=1e-2),
    BuildConfig(order=4, min_word_count=2),
])
def test_every_context_sums_to_one_with_and_without_pruning(cfg):
    lm = NgramLM(build_lm(TEXT, cfg))
    for history in ([], ["the"], ["the", "cat"], ["on", "the"], ["zebra"], ["turn", "off", "the"]):
        assert _sum_over_vocab(lm, history) == pytest.approx(1.0, abs=1e-6)


def test_pruning_lists_fewer_ngrams():
    full = build_lm(TEXT, BuildConfig(order=3)).size()
    counted = build_lm(TEXT, BuildConfig(order=3, min_counts=(1, 2, 2))).size()
    entropy = build_lm(TEXT, BuildConfig(order=3, entropy_threshold=1e-2)).size()
    assert counted[2] < full[2] and counted[1] < full[1]
    assert entropy[2] < full[2]
    assert counted[0] == full[0]  # unigrams are pruned by vocabulary size, not by count


def test_rare_words_become_unk():
    lm = NgramLM(build_lm(TEXT, BuildConfig(order=2, min_word_count=2)))
    assert "red" not in lm.ids and "cat" in lm.ids
    assert lm.score(["the", "mat", "was"], "red") == lm.score(["the", "mat", "was"], "<unk>") + lm.oov_penalty
    assert lm.score(["the", "red"], "cat") == lm.score(["the", "<unk>"], "cat")  # in the history: just <unk>


def test_arpa_and_binary_round_trips_keep_the_scores(tmp_path):
    table = build_lm(TEXT, BuildConfig(order=3, min_counts=(1, 1, 2)))
    lm = NgramLM(table)
    write_arpa(table, tmp_path / "x.arpa.gz")
    lm.save(tmp_path / "x.eslm")
    arpa, binary = load_lm(tmp_path / "x.arpa.gz"), load_lm(tmp_path / "x.eslm")
    for history, word in [([], "the"), (["the"], "cat"), (["the", "cat"], "sat"), (["a", "cat"], "zebra"),
                          (["the", "light"], EOS)]:
        assert arpa.score(history, word) == pytest.approx(lm.score(history, word), abs=1e-5)
        assert binary.score(history, word) == pytest.approx(lm.score(history, word), abs=2e-2)  # float16


def test_binary_lm_is_held_compactly_and_saves_back_unchanged(tmp_path):
    """A loaded binary LM keeps its float16 logs and narrows keys that fit 32 bits (a server's memory),
    scores exactly what float32 copies of the same file would, and writes the same file format back."""
    import numpy as np

    table = build_lm(TEXT, BuildConfig(order=3, min_counts=(1, 1, 1)))
    NgramLM(table).save(tmp_path / "x.eslm")
    lm = NgramLM.load_binary(tmp_path / "x.eslm")
    assert [k.dtype for k in lm._keys] == [np.uint32, np.uint32, np.uint32]  # 3-grams over ~20 words fit too
    assert [p.dtype for p in lm._probs] == [np.float16] * 3
    wide = NgramLM.load_binary(tmp_path / "x.eslm")
    wide._keys = [k.astype(np.int64) for k in wide._keys]
    wide._probs = [p.astype(np.float32) for p in wide._probs]
    wide._backoffs = [b.astype(np.float32) for b in wide._backoffs]
    for history in ([], ["the"], ["the", "cat"], ["on", "the"], ["zebra"]):
        for word in [*lm.vocab[:30], EOS, "zebra"]:
            assert lm.score(history, word) == wide.score(history, word)
    lm.save(tmp_path / "y.eslm")
    with np.load(tmp_path / "y.eslm") as z:
        assert z["keys1"].dtype == np.int64 and z["keys3"].dtype == np.int64
    assert NgramLM.load_binary(tmp_path / "y.eslm").table() == lm.table()


def test_arpa_backoff_arithmetic(tmp_path):
    (tmp_path / "hand.arpa").write_text(
        "\\data\\\nngram 1=4\nngram 2=1\n\n\\1-grams:\n-99 <s> -0.5\n-0.5 a -0.3\n-0.7 b\n-0.9 </s>\n\n"
        "\\2-grams:\n-0.2 a b\n\n\\end\\\n")
    lm = load_lm(tmp_path / "hand.arpa")
    ln10 = math.log(10)
    assert lm.score(["a"], "b") == pytest.approx(-0.2 * ln10)
    assert lm.score(["a"], "a") == pytest.approx((-0.3 - 0.5) * ln10)  # bow(a) + P(a)
    assert lm.score([], "a") == pytest.approx((-0.5 - 0.5) * ln10)  # bow(<s>) + P(a)
    assert lm.score(["b"], "a") == pytest.approx(-0.5 * ln10)  # b has no backoff weight: 0
    assert lm.score([], "zebra") < -200  # no <unk> in the file: unknown words are all but impossible


def test_bad_inputs_are_refused_with_a_message(tmp_path):
    with pytest.raises(LMError, match="no text"):
        build_lm([[], []])
    with pytest.raises(LMError, match="order"):
        BuildConfig(order=0)
    (tmp_path / "bad.arpa").write_text("hello world\n")
    with pytest.raises(LMError, match="not an ARPA"):
        read_arpa(tmp_path / "bad.arpa")
    (tmp_path / "short.arpa").write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1 a\n\n\\end\\\n")
    with pytest.raises(LMError, match="declares 3"):
        read_arpa(tmp_path / "short.arpa")
    with pytest.raises(LMError, match="cannot read"):
        load_lm(tmp_path / "missing.eslm")


def test_cli_build_and_eval(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(" ".join(s) for s in TEXT) + "\nThe 2 cats sat!\n")
    out = tmp_path / "lm.arpa"
    assert main(["lm", "build", str(text), "--order", "3", "--out", str(out), "--prune", "1", "1", "2"]) == 0
    assert "two" in read_arpa(out).vocab  # digits went through the normaliser
    held_out = tmp_path / "held.txt"
    held_out.write_text("the cat sat on the zebra\n")
    capsys.readouterr()
    assert main(["lm", "eval", str(out), str(held_out)]) == 0
    printed = capsys.readouterr().out
    assert "OOV 1 (16.67%)" in printed and "perplexity" in printed
    assert main(["lm", "eval", str(held_out), str(held_out)]) == 1  # a text file is not an LM


def test_default_lm_is_shipped_and_fits_everyday_speech():
    lm = load_default_lm()
    if not DEFAULT_LM.exists():
        assert lm is None
        pytest.skip("no default LM in this build")
    assert lm is not None and lm.order >= 3
    assert lm.score(["what", "is", "the"], "weather") > lm.score(["what", "is", "the"], "sat")
    # Sentences written for this test, not taken from any evaluation set.
    ppl = perplexity(lm, [s.split() for s in ["turn on the kitchen lights", "what time is it",
                                              "she walked into the room and sat down"]])
    assert ppl.perplexity < 1000 and ppl.oov == 0


def test_score_partial_answers_the_same_from_its_cache_and_stays_bounded(monkeypatch):
    import model.lm as lm_module

    monkeypatch.setattr(lm_module, "PARTIALS_CACHED", 3)
    lm = NgramLM(build_lm(TEXT, BuildConfig(order=2)))
    partials = ["c", "ca", "cat", "cax", "zz", "the", "th", "q"]
    first = [lm.score_partial([], p) for p in partials]
    assert first == [0.0, 0.0, 0.0, lm.oov_penalty, lm.oov_penalty, 0.0, 0.0, lm.oov_penalty]
    assert [lm.score_partial(["the"], p) for p in partials] == first  # the history never matters
    assert len(lm._partials) <= 3

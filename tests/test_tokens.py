from __future__ import annotations

import pytest

from model.tokens import Vocabulary, normalize_text, number_to_words


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Press 1, then #.", "press one then"),
        ("WE CALL IT BEAR", "we call it bear"),
        ("I don't know 'why'", "i don't know why"),
        ("It's 3.5% of 12,500", "it's three point five percent of twelve thousand five hundred"),
        ("the 21st and 3rd", "the twenty first and third"),
        ("dial 0800", "dial zero eight zero zero"),
        ("rock&roll - café", "rock and roll cafe"),
        ("  ", ""),
        ("Cæsar\u02bcs œuvre", "caesar's oeuvre"),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_number_to_words():
    assert number_to_words(0) == "zero"
    assert number_to_words(40) == "forty"
    assert number_to_words(115) == "one hundred fifteen"
    assert number_to_words(2_000_019) == "two million nineteen"


def test_vocabulary_round_trip_and_unknown_characters():
    v = Vocabulary()
    assert len(v) == 29 and v.symbols[0] == "<blank>"
    assert v.decode(v.encode("don't stop")) == "don't stop"
    assert v.unknown_chars("naïve 42") == {"ï", "4", "2"}
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.encode("x1")
    with pytest.raises(ValueError):
        Vocabulary(["a", "b"])

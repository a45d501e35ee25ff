"""The symbol table and the text normaliser shared by training and scoring."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

BLANK = "<blank>"
DEFAULT_SYMBOLS: tuple[str, ...] = (BLANK, " ", "'", *"abcdefghijklmnopqrstuvwxyz")


class Vocabulary:
    """Characters to ids and back. Id 0 is always the CTC blank."""

    def __init__(self, symbols: Sequence[str] = DEFAULT_SYMBOLS) -> None:
        if not symbols or symbols[0] != BLANK:
            raise ValueError(f"the first symbol must be {BLANK!r}")
        if len(set(symbols)) != len(symbols):
            raise ValueError("duplicate symbols in vocabulary")
        self.symbols = tuple(symbols)
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self.space_id = self._index.get(" ", -1)

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, ch: str) -> bool:
        return ch in self._index and ch != BLANK

    def unknown_chars(self, text: str) -> set[str]:
        return {c for c in text if c not in self}

    def encode(self, text: str) -> list[int]:
        bad = self.unknown_chars(text)
        if bad:
            raise ValueError(f"characters outside the vocabulary: {''.join(sorted(bad))!r}")
        return [self._index[c] for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.symbols[i] for i in ids if i != 0)


_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
    "sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_SUFFIX = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                   "nine": "ninth", "twelve": "twelfth"}


def number_to_words(n: int) -> str:
    """English words for a non-negative integer: 1984 -> 'one thousand nine hundred eighty four'."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            words = number_to_words(head) + " " + name
            return words if rest == 0 else words + " " + number_to_words(rest)
    raise AssertionError("unreachable")


def _ordinal(words: str) -> str:
    last = words.split()[-1]
    if last in _ORDINAL_SUFFIX:
        new = _ORDINAL_SUFFIX[last]
    elif last.endswith("y"):
        new = last[:-1] + "ieth"
    else:
        new = last + "th"
    return words[: len(words) - len(last)] + new


def _spell_digits(digits: str) -> str:
    # Long digit runs (phone numbers, codes) and leading zeros are read digit by digit, as people do.
    return " ".join(_ONES[int(d)] for d in digits)


def _number_token(match: re.Match[str]) -> str:
    whole, frac, suffix = match.group(1), match.group(2), (match.group(3) or "").lower()
    if (len(whole) > 1 and whole.startswith("0")) or len(whole) > 9:
        words = _spell_digits(whole)
    else:
        words = number_to_words(int(whole))
    if frac:
        words += " point " + _spell_digits(frac)
    if suffix in ("st", "nd", "rd", "th"):
        words = _ordinal(words)
    elif suffix == "%":
        words += " percent"
    return f" {words} "


_NUMBER = re.compile(r"(\d+)(?:\.(\d+))?(st|nd|rd|th|%)?", re.IGNORECASE)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_SYMBOL_WORDS = {"&": " and ", "+": " plus ", "@": " at ", "=": " equals "}


def normalize_text(text: str) -> str:
    """Lower case, digits spelled out, punctuation dropped, single spaces.

    "Press 1, then #." -> "press one then". Apostrophes inside words are kept ("don't"); quotes
    around words are dropped. Characters that survive but are outside ``vocab`` are left in place
    so that callers can report and skip the utterance instead of silently mangling it
    (``Vocabulary.unknown_chars``).
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    for quote in ("\u2019", "\u2018", "\u02bc"):  # typographic and modifier-letter apostrophes
        text = text.replace(quote, "'")
    for lig, plain in (("æ", "ae"), ("Æ", "AE"), ("œ", "oe"), ("Œ", "OE")):  # NFKD leaves ligatures whole
        text = text.replace(lig, plain)
    text = _THOUSANDS.sub("", text)
    text = _NUMBER.sub(_number_token, text)
    for sym, word in _SYMBOL_WORDS.items():
        text = text.replace(sym, word)
    text = text.lower()
    text = re.sub(r"[-_/]", " ", text)
    # Drop punctuation, keeping apostrophes that sit between letters.
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    text = re.sub(r"[^\w' ]|_", " ", text)
    return re.sub(r"\s+", " ", text).strip()

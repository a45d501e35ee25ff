"""Word and character error rates scored the way the peers were scored (``../shared/EVAL.md``).

Both sides pass through Whisper's English normaliser, then every all-digit token is split into
single digits and the words zero..nine become digits. The normaliser alone turns "TWO SIX FOUR
EIGHT" into "2648" but leaves a recogniser's "2 6 4 8" alone, and spells a lone "1" out as "one";
the last step makes all of these the same four tokens. Rates are totals over the set (jiwer's
corpus-level WER and CER), not averages of per-utterance rates. Utterances whose normalised
reference is empty are skipped: they have no words to get wrong.

This is for comparing with other systems; the training normaliser is ``model.tokens.normalize_text``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .whisper_normalizer import EnglishTextNormalizer

DIGIT_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine".split())}
_DIGITS = re.compile(r"^\d+$")


@functools.cache
def _whisper_normalizer() -> EnglishTextNormalizer:
    return EnglishTextNormalizer()  # reads a 1,700-entry spelling table: build it once


def normalize_for_scoring(text: str) -> str:
    """Whisper's English normaliser, then digits one per token: "Press 12" -> "press 1 2"."""
    tokens = []
    for token in _whisper_normalizer()(text).split():
        token = DIGIT_WORDS.get(token, token)
        if _DIGITS.match(token):
            tokens.extend(token)  # one token per digit
        else:
            tokens.append(token)
    return " ".join(tokens)


@dataclass(frozen=True)
class ErrorRates:
    wer: float  # word errors / reference words, over the whole set
    cer: float  # character errors / reference characters (spaces included), over the whole set
    utterances: int  # scored
    skipped: int  # normalised reference was empty
    reference_words: int


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRates:
    """Corpus WER and CER of raw ``hypotheses`` against raw ``references``, normalised here."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    try:
        import jiwer
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("scoring needs jiwer: pip install 'edgescribe[peers]' (or jiwer)") from e
    refs, hyps = [], []
    for ref, hyp in zip(references, hypotheses, strict=True):
        ref = normalize_for_scoring(ref)
        if ref:
            refs.append(ref)
            hyps.append(normalize_for_scoring(hyp))
    skipped = len(references) - len(refs)
    if not refs:
        return ErrorRates(float("nan"), float("nan"), 0, skipped, 0)
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    n_words = sum(len(r.split()) for r in refs)
    return ErrorRates(words.wer, chars.cer, len(refs), skipped, n_words)

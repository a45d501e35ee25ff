"""WER and CER over a whole set: total edits / total reference length, by Levenshtein distance.

Corpus-level, not a mean of per-utterance rates, so a one-word utterance with one error does not
weigh as much as a sentence. Both sides should already be normalised (``model.tokens.normalize_text``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


def edit_distance(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1).

    One DP row at a time in numpy. Insertions make each row a running minimum,
    row[j] = min(a[j], row[j-1] + 1), which is ``minimum.accumulate(a - j) + j``; so a row costs a
    few vector operations instead of a Python loop over characters (CER on long utterances).
    """
    if len(ref) == 0:
        return len(hyp)
    if len(hyp) == 0:
        return len(ref)
    symbols: dict[Hashable, int] = {}
    r = np.array([symbols.setdefault(s, len(symbols)) for s in ref])
    h = np.array([symbols.setdefault(s, len(symbols)) for s in hyp])
    cols = np.arange(len(h) + 1)
    row = cols.copy()
    for i, sym in enumerate(r, start=1):
        diag = row[:-1] + (h != sym)  # substitution or match
        up = row[1:] + 1  # deletion of ref[i-1]
        a = np.empty_like(row)
        a[0] = i
        a[1:] = np.minimum(diag, up)
        row = np.minimum.accumulate(a - cols) + cols
    return int(row[-1])


@dataclass(frozen=True)
class UtteranceScore:
    ref: str
    hyp: str
    word_errors: int
    words: int
    char_errors: int
    chars: int

    @property
    def wer(self) -> float:
        return self.word_errors / max(1, self.words)


def score_utterance(ref: str, hyp: str) -> UtteranceScore:
    rw, hw = ref.split(), hyp.split()
    return UtteranceScore(ref, hyp, edit_distance(rw, hw), len(rw), edit_distance(ref, hyp), len(ref))


@dataclass(frozen=True)
class ErrorRates:
    utterances: int
    word_errors: int
    words: int
    char_errors: int
    chars: int

    @property
    def wer(self) -> float:
        return self.word_errors / max(1, self.words)

    @property
    def cer(self) -> float:
        return self.char_errors / max(1, self.chars)


def error_rates(scores: Sequence[UtteranceScore]) -> ErrorRates:
    return ErrorRates(
        utterances=len(scores),
        word_errors=sum(s.word_errors for s in scores),
        words=sum(s.words for s in scores),
        char_errors=sum(s.char_errors for s in scores),
        chars=sum(s.chars for s in scores),
    )


def corpus_error_rates(refs: Sequence[str], hyps: Sequence[str]) -> ErrorRates:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    return error_rates([score_utterance(r, h) for r, h in zip(refs, hyps, strict=True)])

"""CTC decoding: greedy and prefix beam search, with word timings and confidences. No parameters.

Both decoders take per-frame log-probabilities (T', V) from the network and return a
``Transcript``. Times are seconds from the start of the stream: ``frame_offset`` shifts a chunk's
frames onto the stream clock, ``frame_seconds`` is the network's output frame period (40 ms).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from .config import DecodingConfig
from .tokens import Vocabulary

FRAME_SECONDS = 0.04  # 10 ms feature hop x 4 subsampling


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Transcript:
    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Emission:
    """One emitted character: its symbol id, the frame it was emitted at and its probability."""

    symbol: int
    frame: int
    prob: float


def words_from_emissions(
    emissions: Sequence[Emission], vocab: Vocabulary, frame_offset: int = 0, frame_seconds: float = FRAME_SECONDS
) -> Transcript:
    """Group emitted characters into words at space symbols; time and score each word."""
    words: list[Word] = []
    current: list[Emission] = []

    def flush() -> None:
        if current:
            text = vocab.decode([e.symbol for e in current])
            start = (current[0].frame + frame_offset) * frame_seconds
            end = (current[-1].frame + 1 + frame_offset) * frame_seconds
            conf = sum(e.prob for e in current) / len(current)
            words.append(Word(text, round(start, 3), round(end, 3), round(conf, 4)))
            current.clear()

    for e in emissions:
        if e.symbol == vocab.space_id:
            flush()
        else:
            current.append(e)
    flush()
    return Transcript(" ".join(w.word for w in words), tuple(words))


def greedy_emissions(log_probs: torch.Tensor) -> list[Emission]:
    """(T', V) -> the characters of the best path, repeats merged and blanks removed."""
    best_lp, best = log_probs.max(dim=-1)
    out: list[Emission] = []
    prev = 0
    for t, (sym, lp) in enumerate(zip(best.tolist(), best_lp.tolist(), strict=True)):
        if sym != 0 and sym != prev:
            out.append(Emission(sym, t, math.exp(lp)))
        prev = sym
    return out


def greedy_decode(log_probs: torch.Tensor, vocab: Vocabulary, frame_offset: int = 0) -> Transcript:
    return words_from_emissions(greedy_emissions(log_probs), vocab, frame_offset)


class WordScorer(Protocol):
    """The hook for a word language model: log10 or ln probability of ``word`` after ``history``."""

    def score(self, history: Sequence[str], word: str) -> float: ...


class HotwordBias:
    """Context biasing: a bonus for every character that spells (part of) a listed word.

    The bonus is a function of the prefix, not accumulated along the path, so a partial match that
    does not end in a listed word loses its bonus again (the context-graph idea of icefall/sherpa).
    """

    def __init__(self, phrases: Iterable[str], bonus: float) -> None:
        self.words = {w for p in phrases for w in p.split() if w}
        self.prefixes = {w[:i] for w in self.words for i in range(1, len(w) + 1)}
        self.bonus = bonus

    def __call__(self, completed: Sequence[str], partial: str) -> float:
        if not self.words:
            return 0.0
        n = sum(len(w) for w in completed if w in self.words)
        if partial in self.prefixes:
            n += len(partial)
        return self.bonus * n


@dataclass
class _Beam:
    blank: float = -math.inf  # log P(prefix, last frame was blank)
    non_blank: float = -math.inf  # log P(prefix, last frame emitted the last symbol)
    emissions: tuple[Emission, ...] = field(default_factory=tuple)

    @property
    def total(self) -> float:
        return _logaddexp(self.blank, self.non_blank)


def _entry(beams: dict[tuple[int, ...], _Beam], prefix: tuple[int, ...], emissions: tuple[Emission, ...]) -> _Beam:
    beam = beams.get(prefix)
    if beam is None:
        beam = beams[prefix] = _Beam(emissions=emissions)
    return beam


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


class BeamSearch:
    """CTC prefix beam search with optional hotword bias and an optional word LM (shallow fusion).

    Scores: log P_ctc(prefix) + lm_weight * LM(words) + word_bonus * n_words + hotword bonus.
    The external part is a function of the prefix alone, cached per prefix.
    """

    def __init__(self, vocab: Vocabulary, cfg: DecodingConfig = DecodingConfig(), lm: WordScorer | None = None):
        self.vocab = vocab
        self.cfg = cfg
        self.lm = lm
        self.hotwords = HotwordBias(cfg.hotwords, cfg.hotword_bonus)
        self._ext_cache: dict[tuple[int, ...], float] = {}

    def _external(self, prefix: tuple[int, ...], final: bool = False) -> float:
        key = prefix + ((-1,) if final else ())
        if key in self._ext_cache:
            return self._ext_cache[key]
        text = self.vocab.decode(prefix)
        parts = text.split(" ")
        completed, partial = (parts, "") if final else (parts[:-1], parts[-1])
        completed = [w for w in completed if w]
        score = self.hotwords(completed, partial)
        if self.lm is not None and completed:
            lm = sum(self.lm.score(completed[:i], w) for i, w in enumerate(completed))
            score += self.cfg.lm_weight * lm + self.cfg.word_bonus * len(completed)
        self._ext_cache[key] = score
        return score

    def decode(self, log_probs: torch.Tensor, frame_offset: int = 0) -> Transcript:
        beams = self.search(log_probs)
        best = max(beams.items(), key=lambda kv: kv[1].total + self._external(kv[0], final=True))
        return words_from_emissions(best[1].emissions, self.vocab, frame_offset)

    def search(self, log_probs: torch.Tensor) -> dict[tuple[int, ...], _Beam]:
        space = self.vocab.space_id
        beams: dict[tuple[int, ...], _Beam] = {(): _Beam(blank=0.0)}
        lp_all = log_probs.tolist()
        for t, lp in enumerate(lp_all):
            threshold = max(lp) + self.cfg.prune_log_prob
            candidates = [s for s in range(1, len(lp)) if lp[s] >= threshold]
            nxt: dict[tuple[int, ...], _Beam] = {}
            for prefix, beam in beams.items():
                total = beam.total
                # Stay on the same prefix through a blank, or by repeating the last symbol.
                b = _entry(nxt, prefix, beam.emissions)
                b.blank = _logaddexp(b.blank, total + lp[0])
                if prefix:
                    b.non_blank = _logaddexp(b.non_blank, beam.non_blank + lp[prefix[-1]])
                for s in candidates:
                    if s == space and (not prefix or prefix[-1] == space):
                        continue  # no leading or doubled spaces: they carry no words
                    new_prefix = prefix + (s,)
                    e = Emission(s, t, math.exp(lp[s]))
                    nb = _entry(nxt, new_prefix, beam.emissions + (e,))
                    # A repeated symbol needs a blank in between to count twice.
                    src = beam.blank if prefix and prefix[-1] == s else total
                    nb.non_blank = _logaddexp(nb.non_blank, src + lp[s])
            ranked = sorted(nxt.items(), key=lambda kv: kv[1].total + self._external(kv[0]), reverse=True)
            beams = dict(ranked[: self.cfg.beam_size])
        return beams

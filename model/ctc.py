"""CTC decoding: greedy and prefix beam search, with word timings and confidences. No parameters.

Both decoders take per-frame log-probabilities (T', V) from the network, a NumPy array (or anything
``np.asarray`` takes: a CPU torch tensor from training or evaluation), and return a
``Transcript``. Nothing here imports torch: it is the decoding of both serving engines.
Times are seconds from the start of the stream: ``frame_offset`` shifts a chunk's
frames onto the stream clock, ``frame_seconds`` is the network's output frame period (40 ms).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Protocol

import numpy as np

from .config import DecodingConfig
from .tokens import Vocabulary

try:  # the frame loop of BeamSearch.advance, compiled (model/_ctcbeam.c); the same results as the Python loop
    from . import _ctcbeam as _native
except ImportError:  # built without a C compiler: the Python loop below
    _native = None

FRAME_SECONDS = 0.04  # 10 ms feature hop x 4 subsampling
# Beam extensions per frame: the best symbols only (flashlight's beam_size_token). A trained CTC
# model rarely puts more than two or three symbols within prune_log_prob of the best; an untrained
# or lost one puts all of them there, and this bounds the cost per frame in that case. Not applied
# under a grammar or lexicon, which need their own symbols whatever their rank.
MAX_SYMBOLS_PER_FRAME = 10
# A prefix made in a frame that no beam keeps stays in its parent's children this many frames more before
# it is forgotten: the same extension is often made again in the next frames, and making one (its LM
# scores) is the search's main cost. On the first 40 LibriSpeech dev files (beam 8 + LM, the shipped
# model) 0 made 146,570 prefixes, 1: 108,681, 2: 98,271, 4: 90,854, 8: 86,989, for ever: 85,650, and 4
# took 19% fewer instructions than 0 in the search (valgrind --tool=callgrind); the results are the same.
KEEP_UNUSED_FRAMES = 4


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
class Hypothesis:
    """One of a search's n best: its transcript and the log-score the search ranked it by."""

    transcript: Transcript
    score: float  # ln P_ctc of the prefix + its external scores (LM, word bonus, hotwords, grammar)


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


def as_log_probs(log_probs: object) -> np.ndarray:
    """(T', V) float32 NumPy from an array or a torch tensor (detached and moved to the CPU first)."""
    if hasattr(log_probs, "detach"):  # a torch tensor, recognised without importing torch
        log_probs = log_probs.detach().cpu().numpy()
    return np.asarray(log_probs, dtype=np.float32)


def greedy_emissions(log_probs: np.ndarray) -> list[Emission]:
    """(T', V) -> the characters of the best path, repeats merged and blanks removed."""
    log_probs = as_log_probs(log_probs)
    best = log_probs.argmax(axis=-1)
    best_lp = np.take_along_axis(log_probs, best[:, None], axis=-1)[:, 0]
    out: list[Emission] = []
    prev = 0
    for t, (sym, lp) in enumerate(zip(best.tolist(), best_lp.tolist(), strict=True)):
        if sym != 0 and sym != prev:
            out.append(Emission(sym, t, math.exp(lp)))
        prev = sym
    return out


def greedy_decode(log_probs: np.ndarray, vocab: Vocabulary, frame_offset: int = 0) -> Transcript:
    return words_from_emissions(greedy_emissions(log_probs), vocab, frame_offset)


END_OF_SENTENCE = "</s>"


class WordScorer(Protocol):
    """A word language model for shallow fusion: ln P(word | history).

    ``history`` is the segment's words so far; the start of the sentence is implied, since every
    segment is decoded on its own. ``word`` may be ``END_OF_SENTENCE``, asked once per ending.
    """

    def score(self, history: Sequence[str], word: str) -> float: ...

    def score_partial(self, history: Sequence[str], partial: str) -> float:
        """Log-score of a word still being spelled (e.g. a penalty once no known word starts so).

        The search relies on two bounds: it never rises as the word grows, and the finished
        word's ``score`` is never above it. They let it skip extensions that cannot make the beam.
        """
        ...


class Constraint(Protocol):
    """What the beam may spell: a deterministic automaton over symbol ids (see ``grammar.py``).

    States are ints; ``start()`` is the state of the empty prefix.
    """

    def start(self) -> int: ...

    def step(self, state: int, symbol: int) -> int | None:
        """The state after ``symbol``, or None where the symbol is not allowed."""
        ...

    def cost(self, state: int, n_chars: int) -> float:
        """Log-score added to an unfinished prefix of ``n_chars`` symbols that is in ``state``."""
        ...

    def final(self, state: int, n_chars: int) -> float | None:
        """Log-score of ending in ``state``, or None where the prefix is not a complete phrase."""
        ...

    def label(self, state: int) -> str | None:
        """Text that replaces the spelling when ending in ``state`` (Vosk's "[unk]"), else None."""
        ...


class HotwordBias:
    """Context biasing: a bonus for every character that spells (part of) a listed word.

    The bonus is a function of the prefix, not accumulated along the path, so a partial match that
    does not end in a listed word loses its bonus again (the context-graph idea of icefall/sherpa).
    """

    def __init__(self, phrases: Iterable[str], bonus: float) -> None:
        self.words = {w for p in phrases for w in p.split() if w}
        self.prefixes = {w[:i] for w in self.words for i in range(1, len(w) + 1)}
        self.bonus = bonus

    def word_score(self, word: str) -> float:
        return self.bonus * len(word) if word in self.words else 0.0

    def partial_score(self, partial: str) -> float:
        return self.bonus * len(partial) if partial in self.prefixes else 0.0

    def __call__(self, completed: Sequence[str], partial: str) -> float:
        return sum(self.word_score(w) for w in completed) + self.partial_score(partial)


class _Prefix:
    """One spelled prefix and everything the external scores know about it.

    Children are made once per (prefix, symbol) and kept while they may be needed, so a prefix is
    one object for the whole search: beams are keyed by it (no hashing of ever longer tuples) and
    its scores are computed once. The search's root holds the tree, so an ancestor that leaves the
    beam and is spelled again is the same object with the same children. No link points back up:
    the tree is freed by reference counting, never left to the cycle collector.
    """

    __slots__ = ("last", "words", "partial", "fixed", "score", "state", "n_chars", "children", "_final")

    def __init__(self, last: int, words: tuple[str, ...], partial: str, fixed: float, state: int,
                 n_chars: int) -> None:
        self.last = last  # the last symbol id; 0 for the empty prefix
        self.words = words  # completed words
        self.partial = partial  # the word being spelled
        self.fixed = fixed  # external score of the completed words (LM, word bonus, hotwords)
        self.score = fixed  # what ranks the prefix: fixed + partial-word bonus + constraint cost
        self.state = state  # constraint state
        self.n_chars = n_chars
        self.children: dict[int, _Prefix | None] = {}
        self._final: float | None = None


@dataclass(slots=True)
class _Beam:
    blank: float = -math.inf  # log P(prefix, last frame was blank)
    non_blank: float = -math.inf  # log P(prefix, last frame emitted the last symbol)
    # The prefix's emissions as a linked list of (symbol, frame, prob, older) nodes, newest first:
    # extending it is O(1), and a plain tuple is cheap to make (Emission objects are made only when a
    # hypothesis is read). They come from the most probable path into the prefix, so a character is
    # timed where the audio says it, not at a first, barely probable emission that happened to
    # survive in the beam.
    emissions: tuple[int, int, float, tuple | None] | None = None
    best_in: float = -math.inf  # log-score of the path the emissions came from

    @property
    def total(self) -> float:
        return _logaddexp(self.blank, self.non_blank)


@dataclass
class BeamState:
    """A search in progress: pass it to ``advance`` chunk by chunk, read ``best`` at any time."""

    root: _Prefix  # holds every prefix still needed, through the children caches
    beams: dict[_Prefix, _Beam]
    frames: int = 0  # frames consumed; emission frames count from the first chunk


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


def _emission_list(node: tuple[int, int, float, tuple | None] | None) -> list[Emission]:
    out = []
    while node is not None:
        out.append(Emission(node[0], node[1], node[2]))
        node = node[3]
    out.reverse()
    return out


class BeamSearch:
    """CTC prefix beam search with hotword bias, word LM shallow fusion and constrained spelling.

    Ranking score: log P_ctc(prefix) + lm_weight * ln P_lm(words) + word_bonus * n_words
    + hotword bonus + constraint cost. Words are scored by the LM as they complete (at a space, or
    at the end, where the sentence end is scored too). A ``Constraint`` (a grammar of phrases, or a
    lexicon of words) removes every extension it does not allow, so the result is always something
    it accepts, or empty. Stateless between searches: one instance can serve many streams.
    """

    def __init__(self, vocab: Vocabulary, cfg: DecodingConfig = DecodingConfig(), lm: WordScorer | None = None,
                 constraint: Constraint | None = None):
        self.vocab = vocab
        self.cfg = cfg
        self.lm = lm
        self.constraint = constraint
        self.hotwords = HotwordBias(cfg.hotwords, cfg.hotword_bonus)

    # -- external scores ----------------------------------------------------------------------

    def _word_score(self, history: tuple[str, ...], word: str) -> float:
        score = self.hotwords.word_score(word)
        if self.lm is not None:
            score += self.cfg.lm_weight * self.lm.score(history, word) + self.cfg.word_bonus
        return score

    def _child(self, p: _Prefix, s: int) -> _Prefix | None:
        state = p.state
        if self.constraint is not None:
            state = self.constraint.step(state, s)
            if state is None:
                p.children[s] = None
                return None
        if s == self.vocab.space_id:
            c = _Prefix(s, p.words + (p.partial,), "", p.fixed + self._word_score(p.words, p.partial), state,
                        p.n_chars + 1)
        else:
            c = _Prefix(s, p.words, p.partial + self.vocab.symbols[s], p.fixed, state, p.n_chars + 1)
            if self.hotwords.prefixes:
                c.score += self.hotwords.partial_score(c.partial)
            if self.lm is not None:
                c.score += self.cfg.lm_weight * self.lm.score_partial(c.words, c.partial)
        if self.constraint is not None:
            c.score += self.constraint.cost(state, c.n_chars)
        p.children[s] = c
        return c

    def _final(self, p: _Prefix) -> float:
        """External score of ending the segment with this prefix; -inf where it may not end."""
        if p._final is None:
            score, words = p.fixed, p.words
            if p.partial:
                score += self._word_score(words, p.partial)
                words = words + (p.partial,)
            if self.lm is not None:
                score += self.cfg.lm_weight * self.lm.score(words, END_OF_SENTENCE)
            if self.constraint is not None:
                end = self.constraint.final(p.state, p.n_chars)
                score = -math.inf if end is None else score + end
            p._final = score
        return p._final

    def _max_gain(self) -> float:
        """The most a space (a word ending) can raise a prefix's external score (see WordScorer); any
        other symbol only spells on, which never raises it (0). With hotwords or a constraint there is
        no such bound (inf), and every candidate extension is made."""
        if self.hotwords.prefixes or self.constraint is not None:
            return math.inf
        return max(0.0, self.cfg.word_bonus) if self.lm is not None else 0.0

    # -- search -------------------------------------------------------------------------------

    def start(self) -> BeamState:
        state = self.constraint.start() if self.constraint is not None else 0
        root = _Prefix(0, (), "", 0.0, state, 0)
        return BeamState(root, {root: _Beam(blank=0.0)})

    def advance(self, search: BeamState, log_probs: np.ndarray) -> BeamState:
        """Consume (T', V) log-probabilities; ``search`` is updated in place and returned."""
        log_probs = as_log_probs(log_probs)
        space = self.vocab.space_id
        prune = self.cfg.prune_log_prob
        beam_size = self.cfg.beam_size
        exp = math.exp
        beams = search.beams
        if log_probs.shape[0] == 0:
            return search
        # A constraint needs its own symbols whatever their rank, and bounds the branching itself.
        k = log_probs.shape[1] - 1 if self.constraint is not None else min(MAX_SYMBOLS_PER_FRAME,
                                                                            log_probs.shape[1] - 1)
        symbols = log_probs[:, 1:]
        order = np.argsort(-symbols, axis=-1, kind="stable")[:, :k]  # (T', k), best first, ties by id
        top_lp = np.take_along_axis(symbols, order, axis=-1)
        floors = log_probs.max(axis=-1) + prune
        max_gain = self._max_gain()
        if _native is not None and log_probs.shape[1] <= _native.MAX_SYMBOLS:
            search.beams = _native.advance(self, beams, np.ascontiguousarray(log_probs),
                                           (order + 1).astype(np.int64), np.ascontiguousarray(top_lp),
                                           floors.astype(np.float32), search.frames, space, beam_size,
                                           max_gain, _Beam, KEEP_UNUSED_FRAMES)
            search.frames += log_probs.shape[0]
            return search
        top_sym = (order + 1).tolist()
        floors = floors.tolist()
        # Prefixes made lately that no beam holds: [parent, symbol, prefix, frames kept] (see KEEP_UNUSED_FRAMES).
        unused: list[list] = []
        for lp, syms, lps, floor in zip(log_probs.tolist(), top_sym, top_lp.tolist(), floors, strict=True):
            t = search.frames
            search.frames += 1
            candidates = [s for s, v in zip(syms, lps, strict=True) if v >= floor]
            lp_blank = lp[0]
            nxt: dict[_Prefix, _Beam] = {}
            # Stay on the same prefix through a blank, or by repeating the last symbol.
            ranked = []
            for p, beam in beams.items():
                total = beam.total
                ranked.append((p, beam, total))
                if p.last:
                    repeat = beam.non_blank + lp[p.last]
                    stay = total + lp_blank
                    nxt[p] = _Beam(stay, repeat, beam.emissions, max(stay, repeat))
                else:
                    nxt[p] = _Beam(total + lp_blank, -math.inf, beam.emissions, total + lp_blank)
            # Every prefix has one parent, so a new prefix gets one path in this frame: if that
            # path's score plus the most its external score can gain (only a word ending gains) is
            # below the beam_size-th best prefix already here, it cannot survive the cut and is never
            # made. Extensions go best first, so that bar rises as fast as it can. ``floor_heap`` holds
            # lower bounds of the scores of beam_size prefixes in this frame (scores only rise as paths
            # merge in).
            bounded = max_gain != math.inf and len(nxt) >= beam_size
            if bounded:
                floor_heap = heapq.nlargest(beam_size, [b.total + p.score for p, b in nxt.items()])
                floor_heap.reverse()  # ascending: a valid min-heap
                bar = floor_heap[0]
            extensions = []
            for p, beam, total in ranked:
                last = p.last
                p_score = p.score
                for s in candidates:
                    if s == space and (not last or last == space):
                        continue  # no leading or doubled spaces: they carry no words
                    # A repeated symbol needs a blank in between to count twice.
                    score = (beam.blank if s == last else total) + lp[s]
                    if bounded and score + p_score + (max_gain if s == space else 0.0) < bar \
                            and p.children.get(s) not in nxt:
                        continue  # hopeless as a new prefix, and not a path into one already here
                    extensions.append((score + p_score, score, s, p, beam))
            if bounded:
                extensions.sort(key=itemgetter(0), reverse=True)
            for bound, score, s, p, beam in extensions:
                c = p.children.get(s, p)
                if c is None:
                    continue
                nb = nxt.get(c) if c is not p else None
                if nb is None:  # a prefix new to this frame
                    if bounded and bound + (max_gain if s == space else 0.0) < floor_heap[0]:
                        continue
                    if c is p:  # not made yet
                        c = self._child(p, s)
                        if c is None:
                            continue
                        unused.append([p, s, c, 0])  # until it survives a cut
                    nb = nxt[c] = _Beam(non_blank=score, best_in=score,
                                        emissions=(s, t, exp(lp[s]), beam.emissions))
                    if bounded:
                        heapq.heappushpop(floor_heap, score + c.score)
                    continue
                nb.non_blank = _logaddexp(nb.non_blank, score)
                if score > nb.best_in:
                    nb.emissions, nb.best_in = (s, t, exp(lp[s]), beam.emissions), score
            if len(nxt) > beam_size:
                nxt = dict(heapq.nlargest(beam_size, nxt.items(), key=lambda kv: kv[1].total + kv[0].score))
            # A prefix made lately that is in a beam now is part of the tree; one that has been in none
            # for KEEP_UNUSED_FRAMES frames is forgotten: it has no children, so nothing else refers to
            # it, and the tree stays O(frames x beam).
            kept = []
            for entry in unused:
                if entry[2] in nxt:
                    continue
                if entry[3] < KEEP_UNUSED_FRAMES:
                    entry[3] += 1
                    kept.append(entry)
                else:
                    del entry[0].children[entry[1]]
            unused = kept
            beams = nxt
        for p, s, _, _ in unused:  # the search stops here (until the next chunk)
            del p.children[s]
        search.beams = beams
        return search

    def best(self, search: BeamState, frame_offset: int = 0, final: bool = True) -> Transcript:
        """The best hypothesis so far. ``final``: it must be a complete one (and the LM scores its
        end); otherwise the best-ranked prefix, for partial results while audio still comes."""
        if final:
            hypotheses = self.nbest(search, 1, frame_offset)
            # Nothing complete yet: say nothing rather than something not allowed.
            return hypotheses[0].transcript if hypotheses else Transcript("")
        score, p, beam = max(((beam.total + p.score, p, beam) for p, beam in search.beams.items()),
                             key=itemgetter(0))
        if score == -math.inf:
            return Transcript("")
        return words_from_emissions(_emission_list(beam.emissions), self.vocab, frame_offset)

    def leading_state(self, search: BeamState) -> object | None:
        """The constraint state of the best-ranked prefix (complete or not); None for an empty beam."""
        if not search.beams:
            return None
        return max(search.beams.items(), key=lambda kv: kv[1].total + kv[0].score)[0].state

    def nbest(self, search: BeamState, n: int, frame_offset: int = 0) -> list[Hypothesis]:
        """The ``n`` best complete hypotheses in the beam, best first, one per text: a prefix that ends
        in a space spells the same words as the one without it, and under a grammar many spellings end
        as "[unk]". At most the beam's width of them; none while nothing complete is in the beam."""
        scored = sorted(((beam.total + self._final(p), p, beam) for p, beam in search.beams.items()),
                        key=itemgetter(0), reverse=True)  # stable: ties keep the beam's order, as max() does
        out: list[Hypothesis] = []
        seen: set[str] = set()
        for score, p, beam in scored:
            if score == -math.inf or len(out) == n:
                break
            t = words_from_emissions(_emission_list(beam.emissions), self.vocab, frame_offset)
            label = self.constraint.label(p.state) if self.constraint is not None else None
            if label is not None and t.words:
                conf = sum(w.confidence for w in t.words) / len(t.words)
                t = Transcript(label, (Word(label, t.words[0].start, t.words[-1].end, round(conf, 4)),))
            if t.text not in seen:
                seen.add(t.text)
                out.append(Hypothesis(t, score))
        return out

    def decode(self, log_probs: np.ndarray, frame_offset: int = 0) -> Transcript:
        return self.best(self.advance(self.start(), log_probs), frame_offset)

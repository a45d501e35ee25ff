"""Word n-gram language models: build from text, read and write ARPA, score words for beam search.

Smoothing is interpolated modified Kneser-Ney (Chen & Goodman 1998, as KenLM's ``lmplz``): three
discounts per order estimated from counts of counts, continuation counts for the lower orders
(raw counts for n-grams that start with ``<s>``, which nothing can precede), and a unigram
distribution interpolated with the uniform one, so ``<unk>`` gets the mass left over.

Pruning, in the order applied:
  * vocabulary: words seen fewer than ``min_word_count`` times (or beyond ``max_vocab``) become
    ``<unk>`` before counting, so ``<unk>`` gets real n-gram statistics;
  * counts: n-grams of order n >= 2 seen fewer than ``min_counts[n-1]`` times are not listed;
  * relative entropy (Stolcke 1998, SRILM's ``-prune``): an n-gram is dropped when the weighted
    KL divergence its removal causes is below ``entropy_threshold``.
Listed n-grams keep the probability the full model gives them; every backoff weight is then
recomputed so that each context's distribution still sums to one (as SRILM does after pruning).

All probabilities inside the program are natural logarithms, like the CTC log-probabilities they
are added to; ARPA files hold log10 and are converted at the edge.

Two file formats: ARPA (plain or .gz), which every toolkit reads, and a compact binary one
(``.eslm``: a NumPy ``.npz`` without pickles) that loads in milliseconds on a Raspberry Pi.
"""

from __future__ import annotations

import bisect
import gzip
import heapq
import io
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .tokens import normalize_text

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LN10 = math.log(10.0)
ARPA_NO_PROB = -99.0  # the ARPA convention for log10 P(<s>): it is never predicted
BINARY_FORMAT_VERSION = 1
DEFAULT_LM = Path(__file__).parent / "assets" / "default_lm.eslm"
# Added to <unk>'s log-probability for a word outside the vocabulary when decoding (pyctcdecode's
# unk_score_offset default). See NgramLM.score. A setting of the LM object (``lm.oov_penalty``).
OOV_PENALTY = -10.0
PARTIALS_CACHED = 20_000  # word beginnings whose score_partial is kept per LM (~2 MB at most)
# KenLM's --discount_fallback values, used when a tiny text makes the count-of-counts estimate
# meaningless (some count of counts is zero, or a discount falls outside its valid range).
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


class LMError(ValueError):
    """The text or file cannot make or be a language model; the message says why."""


# --------------------------------------------------------------------------------------------
# Text


def read_sentences(paths: Iterable[str | os.PathLike]) -> Iterator[list[str]]:
    """One normalised sentence (list of words) per non-empty line of plain or gzip text files."""
    for path in paths:
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                for line in f:
                    words = normalize_text(line).split()
                    if words:
                        yield words
        except OSError as e:
            raise LMError(f"cannot read {path}: {e.strerror or e}") from e


# --------------------------------------------------------------------------------------------
# Building


@dataclass(frozen=True)
class BuildConfig:
    order: int = 3  # trigrams: most of the gain for short commands and dictation; 4+ needs far more text
    min_word_count: int = 1  # words seen fewer times become <unk>
    max_vocab: int = 0  # keep at most this many most frequent words; 0 = no limit
    # Per order (unigram first): n-grams seen fewer times are not listed. The unigram entry is
    # ignored (use min_word_count); missing orders repeat the last value.
    min_counts: tuple[int, ...] = (1,)
    entropy_threshold: float = 0.0  # Stolcke pruning; 0 = off; 1e-8..1e-7 is typical for small LMs

    def __post_init__(self) -> None:
        if not 1 <= self.order <= 6:
            raise LMError(f"order must be 1..6, got {self.order}")
        if self.min_word_count < 1 or self.max_vocab < 0:
            raise LMError("min_word_count must be >= 1 and max_vocab >= 0")
        if not self.min_counts or any(c < 1 for c in self.min_counts):
            raise LMError("min_counts must be one or more counts >= 1")
        if self.entropy_threshold < 0:
            raise LMError("entropy_threshold must be >= 0")

    def min_count(self, order: int) -> int:
        return self.min_counts[min(order, len(self.min_counts)) - 1]


@dataclass
class NgramTable:
    """The model as plain data: per order, n-gram -> (ln P(w | h), ln backoff(n-gram))."""

    order: int
    vocab: list[str]  # index = word id; <unk>, <s>, </s> included
    probs: list[dict[tuple[int, ...], float]] = field(default_factory=list)  # [order-1][ngram]
    backoffs: list[dict[tuple[int, ...], float]] = field(default_factory=list)

    def size(self) -> list[int]:
        return [len(p) for p in self.probs]


def _choose_vocab(sentences: list[list[str]], cfg: BuildConfig) -> set[str]:
    counts = Counter(w for s in sentences for w in s)
    ranked = [w for w, c in counts.most_common() if c >= cfg.min_word_count]
    if cfg.max_vocab:
        ranked = ranked[: cfg.max_vocab]
    return set(ranked)


def _count(sentences: list[list[int]], order: int) -> list[Counter[tuple[int, ...]]]:
    counts: list[Counter[tuple[int, ...]]] = [Counter() for _ in range(order)]
    for s in sentences:
        for n in range(1, order + 1):
            counts[n - 1].update(zip(*(s[i:] for i in range(n)), strict=False))
    return counts


def _discounts(counts: Iterable[int], order: int) -> tuple[float, float, float]:
    t = Counter(c for c in counts if c <= 4)
    t1, t2, t3, t4 = (t[i] for i in range(1, 5))
    if min(t1, t2, t3, t4) > 0:
        y = t1 / (t1 + 2 * t2)
        d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
        if all(0 < d[i] < i + 1 for i in range(3)):
            return d
    log.warning("order %d: counts of counts %s too few for discounts; using %s", order, (t1, t2, t3, t4),
                FALLBACK_DISCOUNTS)
    return FALLBACK_DISCOUNTS


def build_lm(sentences: Iterable[Sequence[str]], cfg: BuildConfig = BuildConfig()) -> NgramTable:
    """Count, smooth (interpolated modified Kneser-Ney), prune and renormalise."""
    text = [list(s) for s in sentences if s]
    if not text:
        raise LMError("no text: every sentence was empty after normalisation")
    keep = _choose_vocab(text, cfg)
    vocab = [UNK, BOS, EOS, *sorted(keep - {UNK, BOS, EOS})]
    ids = {w: i for i, w in enumerate(vocab)}
    unk, bos = ids[UNK], ids[BOS]
    encoded = [[bos, *(ids.get(w, unk) for w in s), ids[EOS]] for s in text]
    del text
    N = cfg.order
    raw = _count(encoded, N)
    del encoded
    log.info("counted %s n-grams", [len(c) for c in raw])

    # Adjusted counts: raw at the top order and for <s>-initial n-grams; below, the number of
    # distinct words seen to the left (continuation counts).
    adjusted: list[dict[tuple[int, ...], int]] = [dict() for _ in range(N)]
    adjusted[N - 1] = dict(raw[N - 1])
    for n in range(N - 1, 0, -1):
        cont: Counter[tuple[int, ...]] = Counter(g[1:] for g in raw[n])
        adjusted[n - 1] = {g: (c if g[0] == bos else cont[g]) for g, c in raw[n - 1].items()}
    adjusted[0].pop((bos,), None)  # <s> is a context, never a predicted word

    probs: list[dict[tuple[int, ...], float]] = [dict() for _ in range(N)]
    gammas: list[dict[tuple[int, ...], float]] = [dict() for _ in range(N)]  # [n-1]: contexts of order n-1
    for n in range(1, N + 1):
        a = adjusted[n - 1]
        d = (0.0, *_discounts(a.values(), n))
        totals: dict[tuple[int, ...], float] = {}
        mass: dict[tuple[int, ...], float] = {}
        for g, c in a.items():
            h = g[:-1]
            totals[h] = totals.get(h, 0) + c
            mass[h] = mass.get(h, 0.0) + d[min(c, 3)]
        gamma = {h: mass[h] / totals[h] for h in totals}
        gammas[n - 1] = gamma
        p = probs[n - 1]
        if n == 1:
            uniform = 1.0 / (len(vocab) - 1)  # every word but <s>, <unk> included
            g0 = gamma[()]
            for g, c in a.items():
                p[g] = (c - d[min(c, 3)]) / totals[()] + g0 * uniform
            for w in range(len(vocab)):  # <unk>, when no word was mapped to it, gets the uniform share
                if w != bos and (w,) not in p:
                    p[(w,)] = g0 * uniform
        else:
            lower = probs[n - 2]
            for g, c in a.items():
                h = g[:-1]
                p[g] = (c - d[min(c, 3)]) / totals[h] + gamma[h] * lower[g[1:]]
    del adjusted, gammas

    listed = _count_prune(probs, raw, cfg)
    del raw
    table = NgramTable(N, vocab, [{g: math.log(p[g]) for g in keep_n} for p, keep_n in zip(probs, listed,
                                                                                          strict=True)])
    table.probs[0][(bos,)] = ARPA_NO_PROB * LN10
    _renormalise(table)
    if cfg.entropy_threshold > 0:
        _entropy_prune(table, cfg.entropy_threshold)
    log.info("listed %s n-grams", table.size())
    return table


def _count_prune(probs: list[dict[tuple[int, ...], float]], raw: list[Counter[tuple[int, ...]]],
                 cfg: BuildConfig) -> list[set[tuple[int, ...]]]:
    """Which n-grams stay listed: frequent enough, plus every prefix and suffix a listed one needs."""
    N = len(probs)
    listed = [set(probs[0])] + [{g for g in probs[n] if raw[n][g] >= cfg.min_count(n + 1)} for n in range(1, N)]
    # A listed n-gram's context must exist to carry a backoff weight, and its suffix must exist for
    # the backoff chain to be well defined; raw counts are monotone so this rarely adds anything.
    for n in range(N - 1, 1, -1):
        for g in listed[n]:
            listed[n - 1].add(g[:-1])
            listed[n - 1].add(g[1:])
    return listed


def _renormalise(table: NgramTable) -> None:
    """Backoff weights that make every context's distribution sum to one over the vocabulary."""
    N = table.order
    table.backoffs = [dict() for _ in range(N)]
    for n in range(2, N + 1):
        num: dict[tuple[int, ...], float] = {}
        den: dict[tuple[int, ...], float] = {}
        lower = table.probs[n - 2]
        for g, lp in table.probs[n - 1].items():
            h = g[:-1]
            num[h] = num.get(h, 0.0) + math.exp(lp)
            den[h] = den.get(h, 0.0) + math.exp(lower[g[1:]])
        bo = table.backoffs[n - 2]
        for h in num:
            # Clamp: rounding can push a fully covered context a hair past one.
            bo[h] = math.log(max(1.0 - num[h], 1e-12)) - math.log(max(1.0 - den[h], 1e-12))


def _entropy_prune(table: NgramTable, threshold: float) -> None:
    """Stolcke's relative-entropy pruning, highest order first, then renormalise."""
    lm = NgramLM(table)
    for n in range(table.order, 1, -1):
        probs, lower = table.probs[n - 1], table.probs[n - 2]
        needed = {g[:-1] for g in table.probs[n]} | {g[1:] for g in table.probs[n]} if n < table.order else set()
        by_context: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        for g in probs:
            by_context.setdefault(g[:-1], []).append(g)
        drop = []
        for h, grams in by_context.items():
            p_h = math.exp(lm.history_logprob(h))
            num = 1.0 - sum(math.exp(probs[g]) for g in grams)
            den = 1.0 - sum(math.exp(lower[g[1:]]) for g in grams)
            bow = table.backoffs[n - 2].get(h, 0.0)
            for g in grams:
                if g in needed:
                    continue
                p, q = math.exp(probs[g]), math.exp(lower[g[1:]])
                new_bow = math.log(max(num + p, 1e-12)) - math.log(max(den + q, 1e-12))
                delta = -p_h * (p * (lower[g[1:]] + new_bow - probs[g]) + num * (new_bow - bow))
                if delta < threshold:
                    drop.append(g)
        for g in drop:
            del probs[g]
        log.info("entropy pruning dropped %d of %d %d-grams", len(drop), len(drop) + len(probs), n)
        _renormalise(table)
        lm = NgramLM(table)


# --------------------------------------------------------------------------------------------
# ARPA


def write_arpa(table: NgramTable, path: str | os.PathLike) -> None:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n, p in enumerate(table.probs, start=1):
            f.write(f"ngram {n}={len(p)}\n")
        for n, p in enumerate(table.probs, start=1):
            f.write(f"\n\\{n}-grams:\n")
            bo = table.backoffs[n - 1] if n < table.order else {}
            for g in sorted(p):
                words = " ".join(table.vocab[i] for i in g)
                line = f"{p[g] / LN10:.6f}\t{words}"
                if g in bo:
                    line += f"\t{bo[g] / LN10:.6f}"
                f.write(line + "\n")
        f.write("\n\\end\\\n")


_NGRAM_HEADER = re.compile(r"ngram (\d+)=(\d+)")
_SECTION = re.compile(r"\\(\d+)-grams:")


def read_arpa(path: str | os.PathLike) -> NgramTable:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return _parse_arpa(f, str(path))
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise LMError(f"cannot read ARPA file {path}: {e}") from e


def _parse_arpa(f: io.TextIOBase | Iterable[str], name: str) -> NgramTable:
    declared: dict[int, int] = {}
    vocab: list[str] = []
    ids: dict[str, int] = {}
    probs: list[dict[tuple[int, ...], float]] = []
    backoffs: list[dict[tuple[int, ...], float]] = []
    n = 0
    for lineno, line in enumerate(f, start=1):
        line = line.strip()
        if not line or line == "\\data\\":
            continue
        if line == "\\end\\":
            break
        m = _NGRAM_HEADER.fullmatch(line) if n == 0 else None
        if m:
            declared[int(m.group(1))] = int(m.group(2))
            continue
        m = _SECTION.fullmatch(line)
        if m:
            n = int(m.group(1))
            if n != len(probs) + 1:
                raise LMError(f"{name}:{lineno}: section {n}-grams out of order")
            probs.append({})
            backoffs.append({})
            continue
        if n == 0:
            raise LMError(f"{name}:{lineno}: not an ARPA file (expected \\data\\ and ngram counts)")
        parts = line.split()
        if len(parts) not in (n + 1, n + 2):
            raise LMError(f"{name}:{lineno}: expected {n} words, a log10 probability and an optional backoff")
        words = parts[1 : n + 1]
        if n == 1 and words[0] not in ids:
            ids[words[0]] = len(vocab)
            vocab.append(words[0])
        try:
            g = tuple(ids[w] for w in words)
        except KeyError as e:
            raise LMError(f"{name}:{lineno}: word {e.args[0]!r} is not a unigram") from None
        probs[n - 1][g] = float(parts[0]) * LN10
        if len(parts) == n + 2:
            backoffs[n - 1][g] = float(parts[-1]) * LN10
    if not probs:
        raise LMError(f"{name}: no n-gram sections")
    for k, count in declared.items():
        if k > len(probs) or len(probs[k - 1]) != count:
            raise LMError(f"{name}: header declares {count} {k}-grams, found "
                          f"{len(probs[k - 1]) if k <= len(probs) else 0}")
    if UNK not in ids:
        # Toolkits may omit <unk> for a closed vocabulary; give unknown words a probability of ~0.
        ids[UNK] = len(vocab)
        vocab.append(UNK)
        probs[0][(ids[UNK],)] = ARPA_NO_PROB * LN10
    return NgramTable(len(probs), vocab, probs, backoffs)


# --------------------------------------------------------------------------------------------
# Binary format and scoring


class NgramLM:
    """A backoff n-gram LM as sorted NumPy arrays, scoring words for beam search (``WordScorer``).

    Each n-gram is one int64 key (its word ids as digits in base |V|), so a file is a handful of
    arrays that load without parsing, and a lookup is a binary search. Scores are cached per
    (context, word): a beam asks the same few questions over and over.
    """

    def __init__(self, table: NgramTable) -> None:
        self.order = table.order
        self.vocab = list(table.vocab)
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self._base = len(self.vocab)
        if self._base ** self.order >= 2**63:
            raise LMError(f"{self.order}-grams over {self._base} words do not fit 64-bit keys")
        self._keys: list[np.ndarray] = []
        self._probs: list[np.ndarray] = []
        self._backoffs: list[np.ndarray] = []
        for n in range(1, self.order + 1):
            grams = table.probs[n - 1]
            bo = table.backoffs[n - 1] if n - 1 < len(table.backoffs) else {}
            keys = np.fromiter((self._key(g) for g in grams), dtype=np.int64, count=len(grams))
            order = np.argsort(keys)
            self._keys.append(keys[order])
            self._probs.append(np.fromiter(grams.values(), dtype=np.float32, count=len(grams))[order])
            self._backoffs.append(np.fromiter((bo.get(g, 0.0) for g in grams), dtype=np.float32,
                                              count=len(grams))[order])
        self._init_lookup()

    def _init_lookup(self) -> None:
        self.oov_penalty = OOV_PENALTY
        self._sorted_words: list[str] | None = None  # built on the first score_partial
        self._partials: dict[str, float] = {}  # a beam spells the same few word beginnings over and over
        self.unk = self.ids[UNK]
        self.bos = self.ids[BOS] if BOS in self.ids else -1
        self._cache: dict[tuple[tuple[int, ...], int], float] = {}
        # Lookups are binary searches in the arrays themselves: no index to build at load time
        # (a dict of a million keys takes seconds on a Pi), a tenth of the memory of Python lists,
        # and nothing for the cycle collector to walk.

    def _key(self, g: Sequence[int]) -> int:
        k = 0
        for i in g:
            k = k * self._base + i
        return k

    def _find(self, n: int, g: Sequence[int]) -> int:
        keys = self._keys[n - 1]
        k = self._key(g)
        # The query in the array's own type (a key of ids below the vocabulary size always fits it): a Python
        # int against 32-bit keys would make NumPy cast the whole array to int64 first, an O(n) copy per lookup.
        i = int(keys.searchsorted(keys.dtype.type(k)))
        return i if i < len(keys) and keys[i] == k else -1

    # -- WordScorer ---------------------------------------------------------------------------

    def score(self, history: Sequence[str], word: str) -> float:
        """ln P(word | <s> history...) for decoding; ``word`` may be ``</s>``.

        A word outside the vocabulary scores as <unk> plus ``oov_penalty``: <unk> stands for all
        rare words together, so on its own it is more probable than most real words, and a beam
        would rather spell garbage (or glue words together) than a known word.
        """
        ctx = tuple(self.ids.get(w, self.unk) for w in history[len(history) - self.order + 1:]) \
            if self.order > 1 else ()
        if len(ctx) < self.order - 1:
            ctx = (self.bos, *ctx)
        w = self.ids.get(word)
        if w is None:
            return self.logprob(ctx, self.unk) + self.oov_penalty
        return self.logprob(ctx, w)

    def logprob(self, ctx: tuple[int, ...], w: int) -> float:
        key = (ctx, w)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        total = 0.0
        ctx = ctx[len(ctx) - self.order + 1:] if self.order > 1 else ()
        while True:
            i = self._find(len(ctx) + 1, (*ctx, w))
            if i >= 0:
                total += float(self._probs[len(ctx)][i])
                break
            if not ctx:
                total += float(self._probs[0][self._find(1, (self.unk,))])
                break
            j = self._find(len(ctx), ctx)
            if j >= 0:
                total += float(self._backoffs[len(ctx) - 1][j])
            ctx = ctx[1:]
        if len(self._cache) > 100_000:  # ~20 MB: bounds memory on a long-running server
            self._cache.clear()
        self._cache[key] = total
        return total

    def score_partial(self, history: Sequence[str], partial: str) -> float:
        """For a word still being spelled: 0 while some vocabulary word starts with it, else the
        OOV penalty, at once, so that a beam cannot put off the cost of an unknown word (or of
        two words glued together) until the word ends. No look-ahead probability beyond that."""
        cached = self._partials.get(partial)
        if cached is not None:
            return cached
        if self._sorted_words is None:
            self._sorted_words = sorted(self.words())
        i = bisect.bisect_left(self._sorted_words, partial)
        known = i < len(self._sorted_words) and self._sorted_words[i].startswith(partial)
        if len(self._partials) >= PARTIALS_CACHED:
            self._partials.clear()
        score = self._partials[partial] = 0.0 if known else self.oov_penalty
        return score

    def history_logprob(self, h: Sequence[int]) -> float:
        """ln P(h) as a word sequence; an initial <s> has probability one."""
        total, start = 0.0, 1 if h and h[0] == self.bos else 0
        for i in range(start, len(h)):
            total += self.logprob(tuple(h[:i]), h[i])
        return total

    def words(self) -> list[str]:
        """The vocabulary without the markers: what a lexicon-constrained search may spell."""
        return [w for w in self.vocab if w not in (BOS, EOS, UNK)]

    # -- files ----------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the binary format (``.eslm``)."""
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(BINARY_FORMAT_VERSION),
            "order": np.array(self.order),
            "vocab": np.frombuffer("\n".join(self.vocab).encode("utf-8"), dtype=np.uint8),
        }
        for n in range(1, self.order + 1):
            arrays[f"keys{n}"] = self._keys[n - 1].astype(np.int64)  # the format's key type, however held
            # float16 logs are within 0.002 nats for the probabilities an LM holds: ample for decoding.
            arrays[f"probs{n}"] = self._probs[n - 1].astype(np.float16)
            if n < self.order:
                arrays[f"backoffs{n}"] = self._backoffs[n - 1].astype(np.float16)
        path = Path(path)
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load_binary(cls, path: str | os.PathLike) -> NgramLM:
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format_version"]) != BINARY_FORMAT_VERSION:
                    raise LMError(f"{path}: binary LM format {int(z['format_version'])}, "
                                  f"this version reads {BINARY_FORMAT_VERSION}")
                self = cls.__new__(cls)
                self.order = int(z["order"])
                self.vocab = z["vocab"].tobytes().decode("utf-8").split("\n")
                self.ids = {w: i for i, w in enumerate(self.vocab)}
                self._base = len(self.vocab)
                # Held as stored, to keep a server small: float16 logs (every lookup reads them as
                # the same floats a float32 copy would hold) and 32-bit keys where an order's keys
                # fit (unigrams, and bigrams up to 65,535 words); the highest order has no backoffs.
                self._keys = [_narrow_keys(z[f"keys{n}"], self._base ** n) for n in range(1, self.order + 1)]
                self._probs = [z[f"probs{n}"] for n in range(1, self.order + 1)]
                self._backoffs = [z[f"backoffs{n}"] if n < self.order
                                  else np.broadcast_to(np.float16(0.0), (len(self._keys[n - 1]),))
                                  for n in range(1, self.order + 1)]
        except (OSError, KeyError, ValueError, EOFError) as e:
            if isinstance(e, LMError):
                raise
            raise LMError(f"cannot read binary LM {path}: {e}") from e
        self._init_lookup()
        return self

    def table(self) -> NgramTable:
        """Back to plain data, e.g. to write ARPA from a binary file."""
        probs, backoffs = [], []
        for n in range(1, self.order + 1):
            grams = [self._unkey(k, n) for k in self._keys[n - 1].tolist()]
            probs.append(dict(zip(grams, self._probs[n - 1].tolist(), strict=True)))
            backoffs.append({g: b for g, b in zip(grams, self._backoffs[n - 1].tolist(), strict=True) if b != 0.0})
        return NgramTable(self.order, list(self.vocab), probs, backoffs)

    def _unkey(self, k: int, n: int) -> tuple[int, ...]:
        out = []
        for _ in range(n):
            k, i = divmod(k, self._base)
            out.append(i)
        return tuple(reversed(out))



def _narrow_keys(keys: np.ndarray, limit: int) -> np.ndarray:
    """``keys`` as uint32 when every key of the order (all below ``limit``) fits, else as they are."""
    return keys.astype(np.uint32) if limit <= 2**32 else keys


def load_lm(path: str | os.PathLike) -> NgramLM:
    """An ARPA (``.arpa``, ``.arpa.gz``) or binary (``.eslm``) LM, by content."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise LMError(f"cannot read {path}: {e.strerror or e}") from e
    if head.startswith(b"PK"):  # .npz is a zip archive
        return NgramLM.load_binary(path)
    return NgramLM(read_arpa(path))


def save_lm(table: NgramTable, path: str | os.PathLike) -> None:
    """ARPA when the name ends in .arpa or .arpa.gz, the binary format otherwise."""
    name = Path(path).name
    if name.endswith((".arpa", ".arpa.gz")):
        write_arpa(table, path)
    else:
        NgramLM(table).save(path)


def load_lm_choice(choice: str) -> NgramLM | None:
    """"none" -> None, "default" -> the shipped LM, anything else -> that file. Raises LMError."""
    if choice == "none":
        return None
    if choice == "default":
        lm = load_default_lm()
        if lm is None:
            raise LMError("this package ships no default language model: use --lm none or a file")
        return lm
    return load_lm(choice)


def load_default_lm() -> NgramLM | None:
    """The LM shipped beside the acoustic model, or None when this build has none."""
    if not DEFAULT_LM.exists():
        return None
    return NgramLM.load_binary(DEFAULT_LM)


# --------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class Perplexity:
    perplexity: float  # over in-vocabulary words and </s>, as SRILM's ppl reports it
    words: int
    sentences: int
    oov: int

    @property
    def oov_rate(self) -> float:
        return self.oov / self.words if self.words else 0.0


def perplexity(lm: NgramLM, sentences: Iterable[Sequence[str]]) -> Perplexity:
    """OOV words are skipped and not counted, as SRILM does: they would otherwise score as <unk>."""
    total, scored, words, oov, n_sent = 0.0, 0, 0, 0, 0
    for s in sentences:
        n_sent += 1
        for i, w in enumerate([*s, EOS]):
            if w != EOS:
                words += 1
                if w not in lm.ids:
                    oov += 1
                    continue
            total += lm.score(s[:i], w)
            scored += 1
    ppl = math.exp(-total / scored) if scored else math.inf
    return Perplexity(ppl, words, n_sent, oov)


def top_words(lm: NgramLM, k: int) -> list[str]:
    """The k most probable unigrams: a small lexicon for tests and benchmarks."""
    words = lm.words()
    return heapq.nlargest(k, words, key=lambda w: lm.score([], w))

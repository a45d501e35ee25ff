"""Phrase lists and lexicons: spelling constraints for the beam search (``ctc.Constraint``).

A ``Grammar`` restricts a segment to exactly one of a list of phrases, the way Vosk's grammar
mode does for command and control: ``["yes", "no", "call mom", "[unk]"]``. The phrases go through
the same normaliser as training text ("press 1" -> "press one") and become a trie over their
characters; the beam may only spell paths of that trie, so its result is always a listed phrase,
or nothing. With ``"[unk]"`` in the list, anything else may be heard too, at a cost per
character, and comes out as the text "[unk]".

A ``Lexicon`` is the same trie over single words, returning to the root at every space: decoding
then spells only known words (any number of them), usually those of the LM.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence

from .tokens import Vocabulary, normalize_text

log = logging.getLogger(__name__)

UNK_PHRASE = "[unk]"  # Vosk's spelling, so Vosk clients' grammars work unchanged
MAX_PHRASES = 1000  # command lists are tens to hundreds of phrases; thousands want an LM instead
MAX_PHRASE_CHARS = 200  # a phrase is said in one breath; longer is a mistake (a pasted document)
# Log-score per character of an "[unk]" match. The [unk] path may spell anything, so without a
# cost it would always beat the phrases; at -2 a phrase wins unless the audio disagrees with it by
# more than two nats per character (one confidently wrong letter in a three-letter word is ~5.5).
# To be tuned with the trained model on FSDD and the Asterisk prompts.
UNK_PENALTY = -2.0
OFF = -1  # the state of a prefix that left the trie: only reachable when "[unk]" is allowed


class GrammarError(ValueError):
    """The phrase list cannot be used; the message says what to change."""


class Grammar:
    """A character trie over normalised phrases, stepped by symbol id. See the module docstring."""

    def __init__(self, phrases: Iterable[str], vocab: Vocabulary, *, unk_penalty: float = UNK_PENALTY,
                 max_phrases: int | None = MAX_PHRASES, repeat: bool = False, normalize: bool = True) -> None:
        items = list(phrases)
        self.allow_unk = any(isinstance(p, str) and p.strip().lower() == UNK_PHRASE for p in items)
        normalized: dict[str, None] = {}  # ordered set: the phrases as the user listed them, once
        for p in items:
            if not isinstance(p, str):
                raise GrammarError(f"phrases must be strings, got {type(p).__name__}: {p!r}")
            if p.strip().lower() == UNK_PHRASE:
                continue
            text = normalize_text(p) if normalize else p
            if not text:
                raise GrammarError(f"phrase {p!r} has no words after normalisation")
            if len(text) > MAX_PHRASE_CHARS:
                raise GrammarError(f"phrase {p[:40]!r}... is {len(text)} characters; the limit is {MAX_PHRASE_CHARS}")
            bad = vocab.unknown_chars(text)
            if bad:
                raise GrammarError(f"phrase {p!r} has characters the model cannot spell: {''.join(sorted(bad))!r}")
            normalized[text] = None
        if not normalized:
            raise GrammarError("the phrase list is empty: give at least one phrase (\"[unk]\" alone is not enough)")
        if max_phrases is not None and len(normalized) > max_phrases:
            raise GrammarError(f"{len(normalized)} phrases; the limit is {max_phrases}. "
                               "Use a language model for open vocabularies.")
        self.phrases = tuple(normalized)
        self.unk_penalty = unk_penalty
        self.repeat = repeat
        self._n_symbols = len(vocab)
        self._space = vocab.space_id
        self._next: dict[int, int] = {}  # state * n_symbols + symbol -> state
        self._finals: set[int] = set()
        self._n_states = 1
        for text in self.phrases:
            state = 0
            for s in vocab.encode(text):
                state = self._add(state, s)
            self._finals.add(state)
        for f in list(self._finals):
            if repeat:
                self._next[f * self._n_symbols + self._space] = 0  # next word
            else:
                # A space after a whole phrase may still end the segment (the beam may spell one
                # before the silence), even where the phrase is also the start of a longer one.
                self._finals.add(self._add(f, self._space))
        if repeat:
            self._finals.add(0)

    @classmethod
    def from_json(cls, text: str, vocab: Vocabulary, **kwargs) -> Grammar:
        """A Vosk-style grammar: a JSON list of phrases, e.g. '["yes", "no", "[unk]"]'."""
        try:
            phrases = json.loads(text)
        except json.JSONDecodeError as e:
            raise GrammarError(f"grammar is not valid JSON: {e}") from None
        if not isinstance(phrases, list):
            raise GrammarError("grammar must be a JSON list of phrases, e.g. [\"yes\", \"no\", \"[unk]\"]")
        return cls(phrases, vocab, **kwargs)

    def _add(self, state: int, symbol: int) -> int:
        key = state * self._n_symbols + symbol
        nxt = self._next.get(key)
        if nxt is None:
            nxt = self._next[key] = self._n_states
            self._n_states += 1
        return nxt

    def __len__(self) -> int:
        return len(self.phrases)

    # -- ctc.Constraint -------------------------------------------------------------------------

    def start(self) -> int:
        return 0

    def step(self, state: int, symbol: int) -> int | None:
        if state == OFF:
            return OFF
        nxt = self._next.get(state * self._n_symbols + symbol)
        if nxt is None:
            return OFF if self.allow_unk else None
        return nxt

    def cost(self, state: int, n_chars: int) -> float:
        return self.unk_penalty * n_chars if state == OFF else 0.0

    def final(self, state: int, n_chars: int) -> float | None:
        if state in self._finals or n_chars == 0:
            return 0.0  # a listed phrase, or silence: nothing said is not a phrase outside the list
        if self.allow_unk and n_chars > 0:
            return self.unk_penalty * n_chars
        return None

    def label(self, state: int) -> str | None:
        return UNK_PHRASE if self.allow_unk and state not in self._finals else None


def lexicon(words: Sequence[str], vocab: Vocabulary) -> Grammar:
    """A word-loop constraint over ``words`` (e.g. ``NgramLM.words()``); unspellable words are skipped."""
    ok = [w for w in words if w and " " not in w and not vocab.unknown_chars(w)]
    if len(ok) < len(words):
        log.info("lexicon: skipped %d of %d words the model cannot spell", len(words) - len(ok), len(words))
    # LM words went through the normaliser when the LM was built; doing it again costs a second.
    return Grammar(ok, vocab, max_phrases=None, repeat=True, normalize=False)

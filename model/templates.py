"""Sentence templates (Home Assistant's format) compiled into a spelling constraint for the beam search.

A template file is what Home Assistant's intent matcher and Speech-to-Phrase read (parsed with
PyPI ``hassil``): ``intents`` with ``sentences`` such as ``"(set|turn) [the] {area} {device} [to]
{level} [percent]"``, ``lists`` (values with optional ``in``/``out``, number ranges), and
``expansion_rules`` (``<rule>``). One template may stand for millions of sentences, so nothing is
ever enumerated:

- Each sentence's expression tree becomes a graph over this model's symbols (letters, apostrophe)
  with word-boundary edges, epsilon edges and tags (which intent, which slot, which value).
  Hassil joins text without spaces into one word ("light[s]" is "light" or "lights"), so the graph
  is over characters, not words. Consecutive boundaries are one space; boundaries at the start and
  the end are free.
- A list is compiled once, as its own sub-graph, and every reference *calls* it (a return node
  pushed on a small stack), so fifty entity names referenced in a hundred sentences cost fifty
  names, not five thousand. Expansion rules are inlined where referenced (they are short).
- ``ctc.Constraint`` wants a deterministic automaton: its states are built lazily, as the beam
  reaches them (subset construction on the fly, memoised), so compile time and memory are linear
  in the template's size and a search only pays for the prefixes it actually spells.

Speech that fits no sentence must not become a command: like a phrase list with ``"[unk]"``, a
prefix that leaves the graph may go on at a cost per character (``unk_penalty``), and such a
result is "no match" (empty text, no intent). The decoded sentence is parsed back through the
graph (``match``) for its intent and slot values, in Home Assistant's terms (``name``, ``area``,
list values, numbers for ranges, plus the fixed ``slots`` of the intent's data block).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .grammar import UNK_PENALTY, GrammarError
from .tokens import Vocabulary, normalize_text, number_to_words

log = logging.getLogger(__name__)

MAX_TEMPLATE_BYTES = 2_000_000  # Home Assistant's whole English set is ~0.4 MB as YAML
MAX_GRAPH_NODES = 2_000_000  # ~200 MB of graph in Python; HA's English set with a 50-entity home is ~90k
MAX_PERMUTATION_ITEMS = 5  # a;b;c;d;e is 120 orders; more is a mistake, not a command
MAX_RANGE_VALUES = 10_000  # "{temperature}" over 0-100 in tenths is ~1000
MAX_DFA_STATES = 1_000_000  # lazily built states kept per grammar (memory bound across searches)
# Template mode's decoding, tuned on development voices (scripts/tune_templates.py; README, "Sentence
# templates"): a wider beam than free decoding (the graph keeps it cheap, and at beam 8 the right
# sentence was pruned half the time), the "[unk]" penalty of phrase lists, and a sentence whose
# ln-score falls more than MIN_MARGIN per character below the audio's own best spelling is no match
# (beam 32: without it 15% of everyday sentences became commands; with it none did, and wrong commands fell from
# 16% to 6% for 46% -> 38% accepted: a wrong action costs more than asking again).
BEAM_SIZE = 32
MIN_MARGIN = -1.0
OFF = -1  # the state of a prefix that left the graph (the no-match path); others are tuples

# Symbol-graph edge kinds are kept in separate per-node tables; a "position" is (node, stack) where
# the stack holds the return nodes of the list sub-graphs being spelled.
_START, _LETTER, _SPACE = 0, 1, 2  # what the last spelled symbol was


class TemplateError(GrammarError):
    """The template cannot be used; the message names the line and says what to change."""


@dataclass(frozen=True)
class SlotValue:
    value: Any  # the list value's "out" (or its text), a number for a range
    text: str  # what was said for it ("" for a fixed slot of the intent)


@dataclass(frozen=True)
class Intent:
    name: str
    slots: dict[str, SlotValue]
    confidence: float  # mean per-character posterior of the spoken sentence, 0-1
    text: str  # the recognised sentence
    # ln-score per character by which the sentence falls short of the audio's own best spelling (the
    # greedy path): 0 when the audio says exactly this sentence, very negative when it says another.
    margin: float = 0.0


@dataclass(frozen=True)
class _Tag:
    kind: str  # "intent", "slot", "value"
    arg: Any  # intent: (name, fixed slots); slot: slot name; value: the value out


class _Line(str):
    """A YAML string that remembers the line it came from (1-based)."""

    line: int = 0


def _load_yaml(text: str, source: str) -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        value = loader.construct_scalar(node)
        if isinstance(value, str):
            s = _Line(value)
            s.line = node.start_mark.line + 1
            return s
        return value

    Loader.add_constructor("tag:yaml.org,2002:str", scalar)
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark is not None else source
        raise TemplateError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None


def _where(source: str, item: Any) -> str:
    line = getattr(item, "line", 0)
    return f"{source}, line {line}" if line else source


class _Graph:
    """The symbol graph: per-node edge tables, appended to as the templates compile."""

    def __init__(self, max_nodes: int) -> None:
        self.letters: list[dict[int, list[int]]] = []
        self.eps: list[list[tuple[int, _Tag | None]]] = []
        self.space: list[list[int]] = []
        self.calls: list[list[tuple[int, int, _Tag]]] = []  # (sub-graph entry, return node, slot tag)
        self.exits: set[int] = set()  # sub-graph exit nodes: a position there returns
        self.max_nodes = max_nodes

    def node(self) -> int:
        if len(self.letters) >= self.max_nodes:
            raise TemplateError(f"the template's graph is over {self.max_nodes} nodes; split it, or shorten "
                                "its lists")
        self.letters.append({})
        self.eps.append([])
        self.space.append([])
        self.calls.append([])
        return len(self.letters) - 1

    def __len__(self) -> int:
        return len(self.letters)


class _Dead(Exception):
    """A branch that can produce nothing (an empty list, a wildcard): its alternative is dropped."""


class Templates:
    """A compiled template file: a ``ctc.Constraint`` whose results are template sentences.

    Build with ``from_yaml`` (a user's file) or the constructor (already loaded, e.g. Home
    Assistant's intents package); ``lists`` supplies values for lists the file only references,
    such as ``name`` and ``area`` (strings, ``{"in": ..., "out": ..., "context": {"domain": ...}}``
    dicts, or (in, out) pairs). Shared by every stream that uses it: the lazily built states are
    memoised here, and a stream's state is an int.
    """

    def __init__(self, data: Mapping[str, Any], vocab: Vocabulary, *, lists: Mapping[str, Any] | None = None,
                 source: str = "<template>", unk_penalty: float = UNK_PENALTY, allow_unk: bool = True,
                 max_nodes: int = MAX_GRAPH_NODES, beam_size: int = BEAM_SIZE,
                 min_margin: float | None = MIN_MARGIN) -> None:
        self.vocab = vocab
        self.source = source
        self.unk_penalty = unk_penalty
        self.allow_unk = allow_unk
        self.beam_size = beam_size  # the search under this grammar uses at least this beam
        self.min_margin = min_margin  # below it a sentence is no match (None: no such rule)
        self._space = vocab.space_id
        self._g = _Graph(max_nodes)
        if not isinstance(data, Mapping) or not isinstance(data.get("intents"), Mapping) or not data["intents"]:
            raise TemplateError(f"{source}: a template file needs an 'intents' mapping, e.g.\nintents:\n  TurnOn:\n"
                                "    data:\n      - sentences:\n          - \"turn on [the] {name}\"")
        # The lists sentences may name (hassil SlotLists): the file's own, then the caller's over them.
        self._lists: dict[str, Any] = {}
        for name, spec in {**(data.get("lists") or {}), **_user_lists(lists or {})}.items():
            self._lists[str(name)] = _read_list(name, spec, source)
        self._rules = {str(k): v for k, v in (data.get("expansion_rules") or {}).items()}
        self._parsed_rules: dict[str, Any] = {}
        self._subs: dict[tuple, tuple[int, int]] = {}  # (list, domains) -> (entry, exit)
        self._spoken: dict[str, str] = {}  # template token -> how the model spells it
        self._building: list[str] = []  # rules being expanded (to refuse recursion)
        self.intents: list[str] = []
        self.dropped = 0  # sentences left out (wildcards, empty lists)
        self.n_sentences = 0
        g = self._g
        self._root = g.node()
        self._final = g.node()
        for intent_name, intent in data["intents"].items():
            blocks = intent.get("data") if isinstance(intent, Mapping) else None
            if not isinstance(blocks, list):
                raise TemplateError(f"{_where(source, intent_name)}: intent {intent_name} needs a 'data' list of "
                                    "blocks with 'sentences'")
            self.intents.append(str(intent_name))
            for block in blocks:
                sentences = block.get("sentences") if isinstance(block, Mapping) else None
                if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
                    raise TemplateError(f"{_where(source, intent_name)}: each data block of {intent_name} needs "
                                        "'sentences', a list of strings")
                fixed = {str(k): v for k, v in (block.get("slots") or {}).items()}
                local_lists = {str(k): _read_list(k, v, source) for k, v in (block.get("lists") or {}).items()}
                domains = _required_domains(block)
                tag = _Tag("intent", (str(intent_name), tuple(sorted(fixed.items(), key=lambda kv: kv[0]))))
                for text in sentences:
                    self._compile_sentence(text, tag, local_lists, domains)
        if self.n_sentences == 0:
            raise TemplateError(f"{source}: no sentence can be spoken ({self.dropped} left out: they need wildcard "
                                "or empty lists)")
        if self.dropped:
            log.info("%s: %d sentence template(s) left out (wildcard or empty lists)", source, self.dropped)
        # Lazily built deterministic states: id -> (positions, last kind); the reverse table; and
        # the transitions found so far.
        self._ids: dict[tuple, tuple] = {}
        self._next: dict[tuple, tuple | None] = {}
        self._closures: dict[tuple, frozenset] = {}
        self._start = self._intern(frozenset({(self._root, ())}), _START)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, text: str, vocab: Vocabulary, *, lists: Mapping[str, Any] | None = None,
                  source: str = "<template>", **kwargs: Any) -> Templates:
        if len(text.encode("utf-8", "replace")) > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"{source}: the template is over {MAX_TEMPLATE_BYTES} bytes")
        data = _load_yaml(text, source)
        if not isinstance(data, Mapping):
            raise TemplateError(f"{source}: a template file is a YAML mapping with 'intents' (and optionally "
                                "'lists' and 'expansion_rules')")
        return cls(data, vocab, lists=lists, source=source, **kwargs)

    def _compile_sentence(self, text: str, tag: _Tag, local_lists: dict, domains: frozenset | None) -> None:
        from hassil.parse_expression import parse_sentence
        from hassil.parser import ParseError

        where = _where(self.source, text)
        try:
            expression = parse_sentence(text, keep_text=True).expression
        except (ParseError, ValueError, IndexError) as e:
            raise TemplateError(f"{where}: sentence {text!r} cannot be parsed: {e}") from None
        g = self._g
        start = g.node()
        try:
            end = self._expr(expression, start, where, local_lists, domains)
        except _Dead:
            self.dropped += 1
            return
        g.eps[self._root].append((start, tag))
        g.eps[end].append((self._final, None))
        self.n_sentences += 1

    def _expr(self, e: Any, state: int, where: str, local_lists: dict, domains: frozenset | None) -> int:
        """Compile expression ``e`` from node ``state``; the node it ends at (raises _Dead)."""
        from hassil.expression import Alternative, ListReference, Permutation, RuleReference, TextChunk
        from hassil.expression import Sequence as Seq

        g = self._g
        if isinstance(e, TextChunk):
            return self._text(e.original_text if e.original_text is not None else e.text, state, where)
        if isinstance(e, Alternative):
            end = g.node()
            alive = False
            for item in e.items:
                start = g.node()
                try:
                    last = self._expr(item, start, where, local_lists, domains)
                except _Dead:
                    continue
                g.eps[state].append((start, None))
                g.eps[last].append((end, None))
                alive = True
            if e.is_optional:
                g.eps[state].append((end, None))
                alive = True
            if not alive:
                raise _Dead
            return end
        if isinstance(e, Permutation):
            if len(e.items) > MAX_PERMUTATION_ITEMS:
                raise TemplateError(f"{where}: a permutation of {len(e.items)} items; the limit is "
                                    f"{MAX_PERMUTATION_ITEMS}")
            orders = [Seq(items=list(p)) for p in itertools.permutations(e.items)]
            return self._expr(Alternative(items=orders), state, where, local_lists, domains)
        if isinstance(e, Seq):
            for item in e.items:
                state = self._expr(item, state, where, local_lists, domains)
            return state
        if isinstance(e, ListReference):
            return self._list(e, state, where, local_lists, domains)
        if isinstance(e, RuleReference):
            return self._rule(e.rule_name, state, where, local_lists, domains)
        raise TemplateError(f"{where}: unsupported template element {type(e).__name__}")

    def _text(self, text: str, state: int, where: str) -> int:
        """Letters and word boundaries of a text chunk ("turn on " or a part of a word: "s")."""
        g = self._g
        tokens = text.split()
        if not tokens:
            if text:  # whitespace only: a boundary
                nxt = g.node()
                g.space[state].append(nxt)
                return nxt
            return state
        if text[0].isspace():
            nxt = g.node()
            g.space[state].append(nxt)
            state = nxt
        first = True
        for token in tokens:
            spoken = self._spoken.get(token)
            if spoken is None:
                spoken = self._spoken[token] = normalize_text(token)
            if not spoken:
                continue  # punctuation
            bad = self.vocab.unknown_chars(spoken)
            if bad:
                raise TemplateError(f"{where}: {token!r} has characters the model cannot spell: "
                                    f"{''.join(sorted(bad))!r}")
            if not first:
                nxt = g.node()
                g.space[state].append(nxt)
                state = nxt
            first = False
            for s in self.vocab.encode(spoken):
                if s == self._space:
                    nxt = g.node()
                    g.space[state].append(nxt)
                else:
                    nxt = g.node()
                    g.letters[state].setdefault(s, []).append(nxt)
                state = nxt
        if text[-1].isspace():
            nxt = g.node()
            g.space[state].append(nxt)
            state = nxt
        return state

    def _rule(self, name: str, state: int, where: str, local_lists: dict, domains: frozenset | None) -> int:
        from hassil.parse_expression import parse_sentence
        from hassil.parser import ParseError

        if name not in self._rules:
            raise TemplateError(f"{where}: unknown expansion rule <{name}>; define it under 'expansion_rules'")
        if name in self._building:
            raise TemplateError(f"{where}: expansion rule <{name}> refers to itself "
                                f"({' -> '.join(self._building + [name])})")
        body = self._parsed_rules.get(name)
        if body is None:
            text = self._rules[name]
            try:
                body = self._parsed_rules[name] = parse_sentence(str(text), keep_text=True).expression
            except (ParseError, ValueError, IndexError) as e:
                raise TemplateError(f"{_where(self.source, text)}: expansion rule <{name}> cannot be parsed: "
                                    f"{e}") from None
        self._building.append(name)
        try:
            return self._expr(body, state, where, local_lists, domains)
        finally:
            self._building.pop()

    def _list(self, ref: Any, state: int, where: str, local_lists: dict, domains: frozenset | None) -> int:
        from hassil.intents import RangeSlotList, TextSlotList, WildcardSlotList

        g = self._g
        name, slot = ref.list_name, ref.slot_name
        inline = ref.get_inline_range() if ref.is_inline_range else None
        if inline is not None:
            slot_list: Any = RangeSlotList(name=name, start=inline[0], stop=inline[1], step=inline[2])
            key: tuple = ("range", inline)
        else:
            slot_list = local_lists.get(name) or self._lists.get(name)
            if slot_list is None:
                raise TemplateError(f"{where}: unknown list {{{name}}}; define it under 'lists' or give its values "
                                    "(for Home Assistant's {name} and {area}: your entity and area names)")
            if isinstance(slot_list, WildcardSlotList):
                raise _Dead  # free text cannot be compiled; Speech-to-Phrase leaves these out too
            use_domains = domains if slot == "name" else None
            key = (name, id(slot_list), use_domains)
        sub = self._subs.get(key)
        if sub is None:
            # A list value is a word (or words) of its own: boundaries around it, free where the
            # sentence already has one ("{minutes}minute" is said "five minute").
            call_in, call_out, entry, exit_ = g.node(), g.node(), g.node(), g.node()
            g.exits.add(call_out)
            g.space[call_in].append(entry)
            g.space[exit_].append(call_out)
            alive = False
            if isinstance(slot_list, RangeSlotList):
                numbers = list(itertools.islice(slot_list.get_numbers(), MAX_RANGE_VALUES + 1))
                if len(numbers) > MAX_RANGE_VALUES:
                    raise TemplateError(f"{where}: list {{{name}}} has over {MAX_RANGE_VALUES} numbers")
                for n in numbers:
                    value = n * slot_list.multiplier if slot_list.multiplier else n
                    start = g.node()
                    g.eps[entry].append((start, _Tag("value", _number(value))))
                    g.eps[self._text(_spell_number(n), start, where)].append((exit_, None))
                    alive = True
            elif isinstance(slot_list, TextSlotList):
                for v in slot_list.values:
                    if use_domains and v.context and v.context.get("domain") not in use_domains:
                        continue
                    start = g.node()
                    try:
                        last = self._expr(v.text_in, start, f"{where} (a value of list {{{name}}})", local_lists,
                                          None)
                    except _Dead:
                        continue
                    out = v.value_out if v.value_out is not None else None
                    g.eps[entry].append((start, _Tag("value", out)))
                    g.eps[last].append((exit_, None))
                    alive = True
            else:
                raise TemplateError(f"{where}: list {{{name}}} of an unsupported kind ({type(slot_list).__name__})")
            sub = self._subs[key] = (call_in, call_out) if alive else (-1, -1)
        if sub[0] < 0:
            raise _Dead
        ret = g.node()
        g.calls[state].append((sub[0], ret, _Tag("slot", slot)))
        return ret

    # -- the deterministic automaton, built as the search needs it -------------------------------
    # A state is the key itself, (positions, kind): a frozenset (its hash is cached) and what the
    # last symbol was. Interning makes equal states one object, so the memo tables are only a cache:
    # past MAX_DFA_STATES they are dropped and rebuilt as needed, and a search in flight keeps working.

    def _intern(self, positions: frozenset, kind: int) -> tuple:
        key = (positions, kind)
        state = self._ids.get(key)
        if state is None:
            if len(self._ids) >= MAX_DFA_STATES:
                log.info("%s: %d lazily built states; dropping the memo", self.source, len(self._ids))
                self._ids.clear()
                self._next.clear()
                self._closures.clear()
            state = self._ids[key] = key
        return state

    def _closure(self, positions: frozenset, spaces: bool) -> frozenset:
        """Positions reachable through epsilons, list calls and returns (and boundaries if ``spaces``)."""
        key = (positions, spaces)
        hit = self._closures.get(key)
        if hit is not None:
            return hit
        g = self._g
        seen = set(positions)
        todo = list(positions)
        while todo:
            node, stack = todo.pop()
            nxt = [(d, stack) for d, _ in g.eps[node]]
            nxt += [(entry, stack + (ret,)) for entry, ret, _ in g.calls[node]]
            if spaces:
                nxt += [(d, stack) for d in g.space[node]]
            if node in g.exits and stack:
                nxt.append((stack[-1], stack[:-1]))
            for p in nxt:
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        out = frozenset(seen)
        self._closures[key] = out
        return out

    def _after_space(self, positions: frozenset) -> frozenset:
        """Positions reachable through at least one word boundary (one spoken space), closed."""
        g = self._g
        crossed = {(d, stack) for node, stack in self._closure(positions, False) for d in g.space[node]}
        return self._closure(frozenset(crossed), True) if crossed else frozenset()

    def start(self) -> tuple:
        return self._start

    def step(self, state: Any, symbol: int) -> Any:
        if state == OFF:
            return OFF
        key = (state, symbol)
        nxt = self._next.get(key, False)
        if nxt is False:
            positions, kind = state
            if symbol == self._space:
                # Only after a letter: the search never spells a leading or doubled space.
                reached = self._after_space(positions) if kind == _LETTER else frozenset()
                nxt = self._intern(reached, _SPACE) if reached else None
            else:
                # After a space the positions are already closed over boundaries; at the start the
                # boundaries are free; inside a word a boundary must be spelled as a space.
                if kind == _SPACE:
                    sources = positions
                else:
                    sources = self._closure(positions, kind == _START)
                letters = self._g.letters
                reached = frozenset((d, stack) for node, stack in sources for d in letters[node].get(symbol, ()))
                nxt = self._intern(reached, _LETTER) if reached else None
            self._next[key] = nxt
        if nxt is None:
            return OFF if self.allow_unk else None
        return nxt

    def _complete(self, state: Any) -> bool:
        positions, _ = state
        return (self._final, ()) in self._closure(positions, True)

    def cost(self, state: Any, n_chars: int) -> float:
        return self.unk_penalty * n_chars if state == OFF else 0.0

    def final(self, state: Any, n_chars: int) -> float | None:
        if n_chars == 0:
            return 0.0  # silence is no command, and no error
        if state != OFF and self._complete(state):
            return 0.0
        if self.allow_unk:
            return self.unk_penalty * n_chars
        return None

    def label(self, state: Any) -> str | None:
        """A prefix that is not a whole sentence is no match: it reads as nothing."""
        return "" if state == OFF or not self._complete(state) else None

    def can_continue(self, state: Any) -> bool:
        """Whether a sentence may go on from here (so a pause may be one inside a command)."""
        if state == OFF:
            return False
        positions, _ = state
        g = self._g
        closure = self._closure(positions, True)
        return any(g.letters[node] for node, _ in closure)

    def can_end(self, state: Any) -> bool:
        return state == OFF or self._complete(state)

    @property
    def n_states(self) -> int:
        """Lazily built deterministic states held now (a measure of the search's memory)."""
        return len(self._ids)

    @property
    def n_nodes(self) -> int:
        return len(self._g)

    # -- reading a result back ------------------------------------------------------------------

    def match(self, text: str, confidence: float = 1.0, margin: float = 0.0) -> Intent | None:
        """The intent and slots of ``text`` if it is one of the template's sentences, else None.

        ``text`` is spelled the way the model spells (normalised). Where a sentence parses in more
        than one way, the first intent in the file wins (as in Home Assistant)."""
        text = normalize_text(text)
        if not text or self.vocab.unknown_chars(text):
            return None
        g = self._g
        # A parse is a position with the tags met on the way: (kind, arg, char index).
        Parse = tuple  # (node, stack, tags)

        def closure(items: list[Parse], spaces: bool, at: int) -> list[Parse]:
            seen: dict[tuple, Parse] = {}
            todo = list(items)
            for p in items:
                seen.setdefault((p[0], p[1]), p)
            while todo:
                node, stack, tags = todo.pop(0)  # breadth first: the first way found is kept
                nxt: list[Parse] = []
                for d, tag in g.eps[node]:
                    nxt.append((d, stack, tags + ((tag, at),) if tag else tags))
                for entry, ret, tag in g.calls[node]:
                    nxt.append((entry, stack + (ret,), tags + ((tag, at),)))
                if spaces:
                    nxt += [(d, stack, tags) for d in g.space[node]]
                if node in g.exits and stack:
                    nxt.append((stack[-1], stack[:-1], tags + ((_Tag("return", None), at),)))
                for p in nxt:
                    if (p[0], p[1]) not in seen:
                        seen[(p[0], p[1])] = p
                        todo.append(p)
            return list(seen.values())

        current = closure([(self._root, (), ())], True, 0)
        kind = _START
        for i, ch in enumerate(text):
            if ch == " ":
                crossed = [(d, stack, tags) for node, stack, tags in closure(current, False, i)
                           for d in g.space[node]]
                current = closure(crossed, True, i + 1)
                kind = _SPACE
                continue
            symbol = self.vocab.encode(ch)[0]
            sources = current if kind != _LETTER else closure(current, False, i)
            current = [(d, stack, tags) for node, stack, tags in sources for d in g.letters[node].get(symbol, ())]
            if not current:
                return None
            kind = _LETTER
        ends = [p for p in closure(current, True, len(text)) if p[0] == self._final and not p[1]]
        if not ends:
            return None
        return self._intent(ends[0][2], text, confidence, margin)

    def _intent(self, tags: tuple, text: str, confidence: float, margin: float) -> Intent:
        name, fixed = "", ()
        slots: dict[str, SlotValue] = {}
        open_slots: list[tuple[str, int, Any]] = []
        for tag, at in tags:
            if tag.kind == "intent":
                name, fixed = tag.arg
            elif tag.kind == "slot":
                open_slots.append([tag.arg, at, None])
            elif tag.kind == "value" and open_slots:
                open_slots[-1][2] = tag.arg
            elif tag.kind == "return" and open_slots:
                slot, begin, value = open_slots.pop()
                said = text[begin:at].strip()
                slots[slot] = SlotValue(said if value is None else value, said)
        out = {k: SlotValue(v, "") for k, v in fixed}
        out.update(slots)
        return Intent(name, out, round(float(confidence), 4), text, round(float(margin), 4))

    def sample(self, rng: Any, n: int) -> list[str]:
        """``n`` sentences by random walks through the graph (for tests and benchmarks); never
        enumerates. ``rng`` is a ``random.Random``."""
        g = self._g
        out = []
        for _ in range(n):
            node, stack, chars, kind = self._root, [], [], _START
            for _ in range(100_000):
                if node == self._final and not stack:
                    break
                moves: list[tuple[str, Any]] = [("eps", d) for d, _ in g.eps[node]]
                moves += [("call", (e, r)) for e, r, _ in g.calls[node]]
                moves += [("space", d) for d in g.space[node]]
                moves += [("letter", (s, d)) for s, ds in g.letters[node].items() for d in ds]
                if node in g.exits and stack:
                    moves.append(("return", stack[-1]))
                how, arg = rng.choice(moves)
                if how == "call":
                    stack.append(arg[1])
                    node = arg[0]
                elif how == "return":
                    node = stack.pop()
                elif how == "letter":
                    if kind == _SPACE and chars:
                        chars.append(" ")
                    chars.append(self.vocab.symbols[arg[0]])
                    node, kind = arg[1], _LETTER
                else:
                    node = arg
                    if how == "space" and kind == _LETTER:
                        kind = _SPACE
            out.append("".join(chars))
        return out


def _read_list(name: Any, spec: Any, source: str) -> Any:
    """A list definition as hassil's SlotList (values, range or wildcard), or a TemplateError."""
    from hassil.intents import _parse_list  # hassil's own reading, so lists mean what they mean in HA

    if not isinstance(spec, Mapping):
        raise TemplateError(f"{_where(source, name)}: list {{{name}}} must be a mapping with 'values', 'range' or "
                            "'wildcard'")
    try:
        return _parse_list(str(name), dict(spec))
    except Exception as e:  # noqa: BLE001 - hassil raises ValueError/KeyError/TypeError/AssertionError
        raise TemplateError(f"{_where(source, name)}: list {{{name}}} cannot be read: {e!r}") from None


def _user_lists(lists: Mapping[str, Any]) -> dict[str, Any]:
    """User-supplied list values (``{"name": ["kitchen light", ...]}``) in the YAML's shape."""
    out = {}
    for name, values in lists.items():
        if isinstance(values, Mapping):
            out[name] = values  # already {"values": [...]} or {"range": ...}
            continue
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise TemplateError(f"list {{{name}}}: give a list of values, got {type(values).__name__}")
        rows = []
        for v in values:
            if isinstance(v, (tuple, list)) and len(v) == 2:
                rows.append({"in": str(v[0]), "out": v[1]})
            else:
                rows.append(v)
        out[name] = {"values": rows}
    return out


def _required_domains(block: Mapping[str, Any]) -> frozenset | None:
    required = (block.get("requires_context") or {}).get("domain")
    if not required:
        return None
    return frozenset([required] if isinstance(required, str) else required)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 6)


def _spell_number(n: float) -> str:
    """How a range value is said: 21 -> "twenty one", 22.5 -> "twenty two point five"."""
    if float(n).is_integer():
        return number_to_words(int(n))
    return normalize_text(f"{n:g}")


def content_key(text: str, lists: Mapping[str, Any] | None = None) -> str:
    """A cache key for a template and its lists: the same file sent again compiles once."""
    blob = json.dumps([text, lists or {}], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8", "replace")).hexdigest()


def home_assistant(vocab: Vocabulary, names: Sequence[Any] = (), areas: Sequence[Any] = (), *,
                   floors: Sequence[Any] = (), language: str = "en", speech_to_phrase: bool = True,
                   **kwargs: Any) -> Templates:
    """Home Assistant's own sentences (PyPI ``home-assistant-intents``) for a home with these entity,
    area and floor names. ``speech_to_phrase``: the set Speech-to-Phrase uses (27 intents); else the
    whole conversation set."""
    import home_assistant_intents as hai

    data = hai.get_speech_to_phrase_intents(language) if speech_to_phrase else hai.get_intents(language)
    if data is None:
        raise TemplateError(f"home-assistant-intents has no {language!r} sentences")
    lists = {"name": list(names), "area": list(areas), "floor": list(floors)}
    return Templates(data, vocab, lists=lists, source=f"home-assistant-intents/{language}", **kwargs)


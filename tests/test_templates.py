"""Sentence templates (model/templates.py): compiling, the search under them, intents and slots.

The spoken fixtures are made by scripts/make_command_fixtures.sh (espeak-ng and flite voices).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from model.audio import load_audio
from model.config import DecodingConfig
from model.ctc import BeamSearch
from model.recognize import Recognizer
from model.runtime import load_serving_model
from model.templates import TemplateError, Templates, home_assistant
from model.tokens import Vocabulary

FIXTURES = Path(__file__).parent / "fixtures" / "commands"
TEMPLATE = (FIXTURES / "commands.yaml").read_text()
NAMES = {"name": ["kitchen light", "tv"]}
VOCAB = Vocabulary()


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates.from_yaml(TEMPLATE, VOCAB, lists=NAMES)


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer(load_serving_model(None))


def _values(intent) -> dict:
    return {k: v.value for k, v in intent.slots.items()}


def _hassil(text: str):
    from hassil import Intents, recognize
    from hassil.intents import TextSlotList

    result = recognize(text, Intents.from_dict(yaml.safe_load(TEMPLATE)),
                       slot_lists={"name": TextSlotList.from_strings(NAMES["name"])})
    return None if result is None else (result.intent.name, {k: v.value for k, v in result.entities.items()})


def test_sampled_sentences_read_back_as_hassil_reads_them(templates):
    sentences = templates.sample(random.Random(0), 150)
    assert len(set(sentences)) > 50  # the walks reach much of the language
    for text in sentences:
        intent = templates.match(text)
        assert intent is not None, text
        assert (intent.name, _values(intent)) == _hassil(text), text
        assert "  " not in text and text == text.strip()


def test_match_gives_slots_in_home_assistant_terms(templates):
    intent = templates.match("set the living room lights to twenty one percent please")
    assert intent.name == "HassLightSet"
    assert _values(intent) == {"area": "living_room", "brightness": 21}
    assert intent.slots["area"].text == "living room"
    assert _values(templates.match("switch on tv")) == {"domain": "light", "name": "tv"}
    assert _values(templates.match("a large latte with oats")) == {"size": "large", "drink": "latte", "milk": "oat"}
    assert templates.match("turn on the radio") is None
    assert templates.match("set the kitchen lights") is None  # unfinished: the level is missing


def _spell(templates: Templates, text: str):
    state = templates.start()
    for s in VOCAB.encode(text):
        state = templates.step(state, s)
    return state


def test_constraint_follows_the_graph_and_leaves_it_for_no_match(templates):
    assert templates.final(_spell(templates, "turn on the tv"), 14) == 0.0
    unfinished = _spell(templates, "set the kitchen")
    assert unfinished != -1 and templates.final(unfinished, 15) < 0 and templates.label(unfinished) == ""
    assert templates.can_continue(unfinished) and not templates.can_end(unfinished)
    assert _spell(templates, "hello there") == -1  # off the graph: the no-match path
    latte = _spell(templates, "a large latte")
    assert templates.can_end(latte) and templates.can_continue(latte)  # [with {milk}] may follow
    strict = Templates.from_yaml(TEMPLATE, VOCAB, lists=NAMES, allow_unk=False)
    assert _spell(strict, "turn of") is None


def test_search_never_leaves_the_language(templates):
    """Whatever the audio says, a template result is one of its sentences or nothing."""
    rng = np.random.default_rng(0)
    search = BeamSearch(VOCAB, DecodingConfig(beam_size=8), constraint=templates)
    seen = 0
    for _ in range(30):
        logits = rng.normal(0, 3, size=(60, len(VOCAB))).astype(np.float32)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        text = search.decode(log_probs).text
        if text:
            seen += 1
            assert templates.match(text) is not None, text
    strict = Templates.from_yaml(TEMPLATE, VOCAB, lists=NAMES, allow_unk=False)
    search = BeamSearch(VOCAB, DecodingConfig(beam_size=8), constraint=strict)
    for _ in range(10):
        logits = rng.normal(0, 3, size=(80, len(VOCAB))).astype(np.float32)
        text = search.decode(logits - np.log(np.exp(logits).sum(-1, keepdims=True))).text
        assert text == "" or strict.match(text) is not None, text
        seen += bool(text)
    assert seen > 0


@pytest.mark.parametrize(("clip", "name", "slots"), [
    ("cmd00", "HassLightSet", {"area": "kitchen", "brightness": 50}),
    ("cmd01", "HassTurnOn", {"domain": "light", "name": "tv"}),
    ("cmd02", "HassTurnOn", {"domain": "light", "name": "kitchen light"}),
])
def test_spoken_commands_give_their_intent(rec, clip, name, slots):
    t = rec.templates(TEMPLATE, NAMES)
    segments = rec.transcribe(load_audio(FIXTURES / f"{clip}.flac", 16000), grammar=t)
    assert len(segments) == 1
    intent = segments[0].intent
    assert intent is not None and intent.name == name and _values(intent) == slots
    assert 0.0 < intent.confidence <= 1.0 and intent.text == segments[0].text


def _streamed(rec: Recognizer, clip: str, grammar) -> list:
    audio = load_audio(FIXTURES / f"{clip}.flac", 16000)
    stream = rec.stream(grammar=grammar)
    segments = []
    for i in range(0, audio.size, 1600):  # 100 ms chunks, as a live client sends them
        segments += stream.accept(audio[i:i + 1600])
    return segments + stream.finish()


@pytest.mark.parametrize(("clip", "text"), [
    ("cmd03", "set the living room lights to twenty percent"),  # 1.2 s pause where no sentence can end
    ("cmd04", "a large latte with oat milk"),  # 0.8 s pause where one can end but may go on
])
def test_a_pause_inside_a_command_does_not_cut_it(rec, clip, text):
    free = _streamed(rec, clip, None)
    assert len(free) == 2  # free decoding closes at the pause (the clip really has one)
    segments = _streamed(rec, clip, rec.templates(TEMPLATE, NAMES))
    assert [s.text for s in segments] == [text]
    assert segments[0].intent is not None


def test_speech_that_is_no_command_is_no_match(rec):
    t = rec.templates(TEMPLATE, NAMES)
    assert rec.transcribe(load_audio(FIXTURES / "cmd05.flac", 16000))  # there is speech in it
    assert rec.transcribe(load_audio(FIXTURES / "cmd05.flac", 16000), grammar=t) == []


def test_compiled_templates_are_cached_by_content(rec):
    a = rec.templates(TEMPLATE, NAMES)
    assert rec.templates(TEMPLATE, {"name": ["kitchen light", "tv"]}) is a
    assert rec.templates(TEMPLATE, {"name": ["tv"]}) is not a


@pytest.mark.parametrize(("text", "message"), [
    ("intents:\n  A:\n    data:\n      - sentences:\n          - 'hello'\n          - 'turn (on'\n",
     "line 6: sentence 'turn (on' cannot be parsed"),
    ("intents:\n  A:\n    data:\n      - sentences:\n          - 'turn on {thing}'\n", "line 5: unknown list {thing}"),
    ("intents:\n  A:\n    data:\n      - sentences:\n          - 'say <x>'\n", "line 5: unknown expansion rule <x>"),
    ("intents:\n  A:\n    data:\n      - sentences:\n          - 'go to 東京'\n",
     "line 5: '東京' has characters the model cannot spell"),
    ("intents:\n  A:\n    data:\n      - sentences:\n          - 'say <x>'\nexpansion_rules:\n  x: 'more <x>'\n",
     "refers to itself"),
    ("intents:\n  A: [1\n", "line 3: not valid YAML"),
    ("lists: {}\n", "needs an 'intents' mapping"),
    ("intents:\n  A:\n    data:\n      - sentences:\n          - '{q}'\nlists:\n  q:\n    wildcard: true\n",
     "no sentence can be spoken"),
])
def test_bad_templates_are_refused_with_the_line(text, message):
    with pytest.raises(TemplateError, match=message.replace("(", r"\(").replace("{", r"\{").replace("}", r"\}")):
        Templates.from_yaml(text, VOCAB, source="mine.yaml")


def test_a_graph_over_the_limit_is_refused():
    with pytest.raises(TemplateError, match="over 500 nodes"):
        Templates.from_yaml(TEMPLATE, VOCAB, lists=NAMES, max_nodes=500)


def test_home_assistant_english_intents_compile_for_a_home():
    names = [{"in": f"{room} {thing}", "out": f"{room} {thing}", "context": {"domain": domain}}
             for room in ("kitchen", "bedroom", "office", "hall", "garage")
             for thing, domain in (("light", "light"), ("lamp", "light"), ("fan", "fan"), ("blinds", "cover"),
                                   ("speaker", "media_player"), ("heater", "climate"), ("plug", "switch"),
                                   ("tv", "media_player"), ("switch", "switch"), ("thermostat", "climate"))]
    areas = ["kitchen", "living room", "bedroom", "office", "hallway", "garage", "bathroom", "dining room",
             "basement", "garden"]
    t = home_assistant(VOCAB, names, areas)  # compile time and size: measured by scripts/bench_commands.py
    assert t.n_sentences > 100
    intent = t.match("turn on the kitchen light")
    assert intent.name == "HassTurnOn" and intent.slots["name"].value == "kitchen light"
    intent = t.match("set the bedroom lamp brightness to forty percent")
    assert intent.name == "HassLightSet" and _values(intent)["brightness"] == 40
    # Names are offered only to intents of their domain: a fan is not dimmed like a light.
    assert t.match("set the bedroom fan brightness to forty percent") is None
    for text in t.sample(random.Random(1), 50):
        assert t.match(text) is not None, text


def test_a_sentence_far_below_what_the_audio_says_is_no_match(rec):
    audio = load_audio(FIXTURES / "cmd00.flac", 16000)
    loose = Templates.from_yaml(TEMPLATE, VOCAB, lists=NAMES, min_margin=None)
    [segment] = rec.transcribe(audio, grammar=loose)
    margin = segment.intent.margin
    assert -1.0 < margin < 1.0  # the sentence is what the clip says: close to its own best spelling
    strict = Templates.from_yaml(TEMPLATE, VOCAB, lists=NAMES, min_margin=margin + 0.01)
    assert rec.transcribe(audio, grammar=strict) == []
    assert rec.beam_search(grammar=loose).cfg.beam_size >= loose.beam_size  # template mode's wider beam

"""The command benchmark's parts (scripts/bench_commands.py): sampling from templates, scoring, noise, voices."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("hassil", reason="templates are parsed with hassil")

from model.training import synth_voices  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_commands.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_commands", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_commands"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


# Every construct the sampler walks: alternatives, optionals, a permutation, a rule, lists with in/out
# values and context, a range with a multiplier, an inline range, a wildcard that must never be sampled.
SMALL = """
language: en
intents:
  SetLevel:
    data:
      - sentences:
          - "<set> [the] {device} [to] {level} [percent]"
          - "dim [the] {device} by {drop} percent"
          - "brighter"
        requires_context:
          domain: light
  Media:
    data:
      - sentences:
          - "search for {song}"
          - "play track {1..20:track}"
          - "(turn it down;by {step})"
        slots:
          domain: media_player
expansion_rules:
  set: "(set|turn)"
lists:
  device:
    values:
      - {in: "[kitchen ]light[s]", out: light.kitchen, context: {domain: light}}
      - {in: "fan", out: fan.ceiling, context: {domain: fan}}
  level: {range: {from: 0, to: 100}}
  step: {range: {from: 1, to: 5}}
  drop: {range: {from: 5, to: 50, step: 5, multiplier: -1}}
  song: {wildcard: true}
"""


@pytest.fixture(scope="module")
def small(bench):
    spec = yaml.safe_load(SMALL)
    return bench.Grammar("small", spec, bench.Intents.from_dict(spec))


def _heard(bench, grammar, text):
    intent, slots = bench.hassil_match(text, grammar)
    return bench.Heard(text, intent, slots, int(intent is not None), 0.0)


def test_every_sampled_command_is_a_sentence_of_its_template_with_the_expected_slots(bench, small):
    commands = bench.sample_commands(small, 40, random.Random(3))
    assert len(commands) == 40
    seen_templates = {c.template for c in commands}
    assert "(turn it down;by {step})" in seen_templates and "play track {1..20:track}" in seen_templates
    assert "search for {song}" not in seen_templates  # a wildcard is free text: not sampled
    assert "brighter" not in seen_templates  # its block needs a light that nothing in it names
    for c in commands:
        assert bench.accepted(c, _heard(bench, small, c.text), small), c
        assert not any(ch.isdigit() for ch in c.text)  # numbers are said as words
    # The block requires a light: the fan is never the {device}, and the multiplier gives the sign.
    assert all(c.slots.get("device") in (None, "light.kitchen") for c in commands)
    assert all(c.slots["drop"] < 0 for c in commands if "drop" in c.slots)
    assert any(c.slots.get("domain") == "media_player" for c in commands)  # a block's fixed slot


def test_sampling_is_seeded(bench, small):
    first = bench.sample_commands(small, 10, random.Random(7))
    assert first == bench.sample_commands(small, 10, random.Random(7))
    assert first != bench.sample_commands(small, 10, random.Random(8))


@pytest.mark.parametrize("grammar_name", ["home-assistant", "thermostat"])
def test_shipped_grammars_sample_commands_their_text_matcher_accepts(bench, grammar_name):
    if grammar_name == "home-assistant":
        pytest.importorskip("home_assistant_intents", reason="pip install 'edgescribe[hass]'")
        grammar = bench.home_assistant_grammar()
    else:
        grammar = bench.file_grammar(bench.GRAMMAR_FILES[0])
    commands = bench.sample_commands(grammar, 80, random.Random(0))
    assert len({c.intent for c in commands}) >= min(7, len(grammar.intents.intents))
    for c in commands:
        assert bench.accepted(c, _heard(bench, grammar, c.text), grammar), c


def test_a_command_is_accepted_only_with_every_slot_right_and_none_made_up(bench):
    g = bench.Grammar("g", {}, None, {"area": {"value": "living room", "text": "living room"}})
    c = bench.Command("g", "HassLightSet", "set the brightness to fifty", {"brightness": 50, "domain": "light"})

    def heard(intent="HassLightSet", intents=1, **slots):
        return bench.Heard("", intent, slots, intents, 0.0)

    assert bench.accepted(c, heard(brightness=50.0, domain="light"), g)
    assert bench.accepted(c, heard(brightness="50", domain="light", area="living room"), g)  # the satellite's own
    assert not bench.accepted(c, heard(brightness=15, domain="light"), g)
    assert not bench.accepted(c, heard(brightness=50), g)  # a slot missing
    assert not bench.accepted(c, heard(brightness=50, domain="light", area="kitchen"), g)  # a slot made up
    assert not bench.accepted(c, heard("HassTurnOn", brightness=50, domain="light"), g)
    assert not bench.accepted(c, heard(intents=2, brightness=50, domain="light"), g)  # split into two commands
    assert not bench.accepted(bench.Command("", None, "what a day"), heard(None, 0), g)


@pytest.mark.parametrize("kind", ["babble", "pink", "brown"])
@pytest.mark.parametrize("snr", [24.0, 6.0, -3.0])
def test_mixture_has_the_asked_snr(bench, kind, snr):
    rng = np.random.default_rng(1)
    speech = (0.3 * np.sin(np.arange(16000) * 0.05) * rng.uniform(0.2, 1.0, 16000)).astype(np.float32)
    pool = [rng.standard_normal(9000).astype(np.float32) * s for s in (0.1, 0.5, 1.0, 2.0, 0.3)]
    lead, trail = 4800, 3200
    noise = bench.noise_for(kind, lead + speech.size + trail, rng, pool)
    mixed = bench.mix_at_snr(speech, noise, snr, lead, trail)
    assert mixed.size == lead + speech.size + trail and np.abs(mixed).max() <= 0.99 + 1e-6
    # The mixture is a*speech + b*noise (a < 1 where it was scaled down against clipping): solve for them.
    padded = np.concatenate([np.zeros(lead), speech, np.zeros(trail)])
    (a, b), *_ = np.linalg.lstsq(np.stack([padded, noise], axis=1), mixed.astype(np.float64), rcond=None)
    measured = 10 * np.log10(a**2 * np.mean(speech.astype(np.float64) ** 2) / (b**2 * np.mean(noise**2.0)))
    assert abs(measured - snr) < 0.1


def test_coloured_noise_tilts_the_way_its_colour_says(bench):
    rng = np.random.default_rng(0)
    low_over_high = []
    for exponent in (1.0, 2.0):
        power = np.abs(np.fft.rfft(bench.coloured_noise(32000, exponent, rng))) ** 2
        freqs = np.fft.rfftfreq(32000, 1 / 16000)
        low, high = power[(freqs > 100) & (freqs < 200)], power[(freqs > 3200) & (freqs < 6400)]
        low_over_high.append(low.mean() / high.mean())
    # 1/f: ~30x more power per bin at 150 Hz than at ~4.8 kHz; 1/f^2: ~1000x.
    assert 10 < low_over_high[0] < 100 and low_over_high[1] > 300


def test_held_out_voices_are_never_offered_for_training(bench, monkeypatch):
    all_kokoro = {v.id for v in synth_voices._kokoro_voices()}
    assert synth_voices.HELD_OUT_VOICES <= all_kokoro  # the constant names real voices
    assert {f"kokoro:{n}" for n in bench.DEFAULT_VOICES} <= synth_voices.HELD_OUT_VOICES
    # discover_voices is where every corpus gets its voices (synth.build_corpus); run it without the engines.
    monkeypatch.setitem(synth_voices.ENGINES, "kokoro", ("module:json", synth_voices._kokoro_voices))
    monkeypatch.setattr(synth_voices.shutil, "which", lambda program: f"/usr/bin/{program}")
    offered = {v.id for v in synth_voices.discover_voices(["kokoro"])}
    assert offered == all_kokoro - synth_voices.HELD_OUT_VOICES and len(offered) == 6


def test_clean_is_the_speech_alone(bench):
    speech = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
    noise = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    mixed = bench.mix_at_snr(speech, noise, float("inf"), 100, 100)
    assert np.array_equal(mixed, np.concatenate([np.zeros(100), speech, np.zeros(100)]).astype(np.float32))

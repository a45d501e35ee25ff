"""The compiled frame loop (model/_ctcbeam.c) against the Python one: the same search, to the bit.

Every case runs the search twice from scratch, once per loop, chunk by chunk as a stream does, and
compares the whole state after each chunk (the beam's prefixes in order, their path scores, their
emissions) and the n best at the end.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from ctc_fixtures import LM_TEXT, VOCAB, spell

import model.ctc as ctc
from model.config import DecodingConfig
from model.ctc import BeamSearch
from model.grammar import Grammar, lexicon
from model.lm import BuildConfig, NgramLM, build_lm

NATIVE = ctc._native
needs_native = pytest.mark.skipif(NATIVE is None, reason="model._ctcbeam is not built (no C compiler)")


@pytest.fixture(scope="module")
def lm() -> NgramLM:
    return NgramLM(build_lm(LM_TEXT, BuildConfig(order=3)))


def _state(search: BeamSearch, state) -> list:
    return [(p.words, p.partial, p.score, b.blank, b.non_blank, b.best_in, ctc._emission_list(b.emissions))
            for p, b in state.beams.items()]


def _run(search: BeamSearch, lp: torch.Tensor, chunks: list[int], native) -> tuple[list, list]:
    saved = ctc._native
    ctc._native = native
    try:
        state, states, start = search.start(), [], 0
        for size in chunks + [lp.shape[0]]:
            search.advance(state, lp[start:start + size])
            start += size
            states.append(_state(search, state))
        return states, [(h.transcript, h.score) for h in search.nbest(state, 5)]
    finally:
        ctc._native = saved


def _noisy(text: str, gen: torch.Generator, noise: float) -> torch.Tensor:
    lp = spell(text, {"c": {"k": 0.5, "c": 0.4}})
    return (lp + noise * torch.randn(lp.shape, generator=gen)).log_softmax(-1)


def _searches(lm: NgramLM):
    yield "greedy-like beam 1", BeamSearch(VOCAB, DecodingConfig(beam_size=1))
    yield "no LM", BeamSearch(VOCAB, DecodingConfig(beam_size=6))
    yield "LM", BeamSearch(VOCAB, DecodingConfig(beam_size=8, lm_weight=0.7, word_bonus=1.5), lm)
    yield "LM, wide", BeamSearch(VOCAB, DecodingConfig(beam_size=16, lm_weight=0.5, word_bonus=2.0,
                                                       prune_log_prob=-20.0), lm)
    yield "hotwords", BeamSearch(VOCAB, DecodingConfig(beam_size=6, hotwords=("kat", "mat")), lm)
    yield "grammar", BeamSearch(VOCAB, DecodingConfig(beam_size=8), None,
                                Grammar(["the cat sat", "the dog sat", "turn on the light", "[unk]"], VOCAB))
    yield "lexicon", BeamSearch(VOCAB, DecodingConfig(beam_size=8), lm, lexicon(lm.words(), VOCAB))


@needs_native
@pytest.mark.parametrize("noise", [0.0, 0.5, 2.0, 4.0])  # 0: exact ties (the same spread everywhere)
def test_the_compiled_loop_gives_the_python_loops_search(lm, noise):
    gen = torch.Generator().manual_seed(int(noise * 10))
    for name, search in _searches(lm):
        for trial, text in enumerate(["the cat sat on the mat", "turn on the light there", "a dog"]):
            lp = _noisy(text, gen, noise)
            chunks = [int(x) for x in torch.randint(1, 12, (6,), generator=gen)]
            python = _run(search, lp, chunks, None)
            compiled = _run(search, lp, chunks, NATIVE)
            assert compiled == python, (name, trial)


@needs_native
def test_the_compiled_loop_refuses_arrays_it_cannot_read():
    search = BeamSearch(VOCAB, DecodingConfig())
    state = search.start()
    lp = spell("cat").numpy()
    with pytest.raises(TypeError, match="float32"):
        NATIVE.advance(search, state.beams, lp.astype("float64"), lp[:, :2].astype("int64"),
                       lp[:, :2].copy(), lp.max(-1), 0, VOCAB.space_id, 8, 0.0, ctc._Beam, 2)


def _tree(p: ctc._Prefix) -> list:
    """Every prefix the search's tree still holds, as (spelling, score), depth first by symbol."""
    out = []
    for _, c in sorted(p.children.items()):
        if c is not None:
            out.append(((c.words, c.partial), c.score))
            out.extend(_tree(c))
    return out


class _Counting(BeamSearch):
    made = 0

    def _child(self, p, s):
        self.made += 1
        return super()._child(p, s)


LOOPS = [pytest.param(None, id="python"), pytest.param(NATIVE, id="compiled", marks=needs_native)]


@pytest.mark.parametrize("native", LOOPS)
def test_prefixes_kept_unused_for_a_few_frames_are_made_once_and_change_nothing(lm, native, monkeypatch):
    """A prefix that falls out of the beam as it is made stays in its parent's children a few frames
    (KEEP_UNUSED_FRAMES), so making it again costs nothing; the search, and the tree left after each
    chunk, are the same as when it is forgotten at once."""
    gen = torch.Generator().manual_seed(3)
    lp = _noisy("turn on the light there and the cat sat on the mat", gen, 1.0)
    chunks = [7, 3, 11, 5, 9, 4]

    def run(keep: int):
        monkeypatch.setattr(ctc, "KEEP_UNUSED_FRAMES", keep)
        search = _Counting(VOCAB, DecodingConfig(beam_size=8, lm_weight=0.7, word_bonus=1.5), lm)
        saved, ctc._native = ctc._native, native
        try:
            state, trees, start = search.start(), [], 0
            for size in chunks + [lp.shape[0]]:
                search.advance(state, lp[start:start + size])
                start += size
                trees.append((_state(search, state), _tree(state.root)))
            return trees, search.made
        finally:
            ctc._native = saved

    forget, made_forget = run(0)
    for keep in (1, 4):
        kept, made_kept = run(keep)
        assert kept == forget, keep
        assert made_kept < 0.95 * made_forget, (keep, made_kept, made_forget)


def test_the_compiled_loop_is_built_where_a_compiler_is():
    # `pip install -e .` builds it (setup.py); it is optional only where no compiler exists.
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: the Python loop serves")
    assert NATIVE is not None, "model._ctcbeam is missing: run `pip install -e .` again to build it"

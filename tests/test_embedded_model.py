"""The model embedded in the package, on real speech it never trained on.

The clips are read from ../shared/data (the project's data folder beside the checkout, which CI has
too) rather than committed: the data's rules keep its audio out of the repository. FSDD test is
recordings 0-4 of each speaker; the embedded model trained on recordings 10-49 only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from model.audio import load_audio
from model.checkpoint import load_model
from model.lm import load_default_lm
from model.recognize import Recognizer
from model.tokens import normalize_text
from model.training.manifest import read_manifest
from model.training.metrics import corpus_error_rates

FSDD_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "test.jsonl"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Measured for the shipped model (README, "The embedded default model"), with a margin for the
# last float bits of other CPUs; a regression of the model or of decoding crosses them.
MAX_WER_FREE = 0.08  # beam + the shipped LM, no grammar: measured 5%
MAX_WER_GRAMMAR = 0.05  # the ten digits as a phrase list: measured 3%


@pytest.fixture(scope="module")
def clips():
    if not FSDD_TEST.exists():
        pytest.skip(f"real speech not found at {FSDD_TEST} (the project's shared data folder)")
    utts = list(read_manifest(FSDD_TEST))[::3]  # 100 of the 300, every speaker and digit
    return [(load_audio(u.audio), normalize_text(u.text)) for u in utts]


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(load_model(), lm=load_default_lm())


def _wer(rec: Recognizer, clips, grammar=None) -> float:
    hyps = [" ".join(s.text for s in rec.transcribe(audio, grammar=grammar)) for audio, _ in clips]
    return corpus_error_rates([ref for _, ref in clips], hyps).wer


def test_embedded_model_hears_digits(recognizer, clips):
    assert _wer(recognizer, clips) <= MAX_WER_FREE


def test_embedded_model_with_a_digit_grammar(recognizer, clips):
    grammar = recognizer.grammar(DIGITS)
    assert _wer(recognizer, clips, grammar) <= MAX_WER_GRAMMAR

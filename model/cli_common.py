"""Argument groups shared by the commands that load and run a model, so they cannot drift."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .config import ENGINES
from .grammar import Grammar
from .lm import load_lm_choice
from .recognize import Recognizer
from .runtime import ServingModel, load_serving_model


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and decoding")
    g.add_argument("--model", default=None, help="model file (default: the model embedded in the package)")
    g.add_argument("--beam-size", type=int, default=None,
                   help="CTC beam width; 1 = greedy (default: the model's own setting)")
    g.add_argument("--hotword", action="append", default=[], metavar="PHRASE",
                   help="bias decoding toward this word or phrase (repeatable)")
    g.add_argument("--lm", default="default", metavar="default|none|FILE",
                   help="word language model fused into the beam search: the shipped one, none, or a file "
                   "from `edgescribe lm build`")
    g.add_argument("--lm-weight", type=float, default=None, help="LM weight (default: the model's setting)")
    g.add_argument("--word-bonus", type=float, default=None,
                   help="score added per word with an LM (default: the model's setting)")
    g.add_argument("--end-padding", dest="end_padding_seconds", type=float, default=None, metavar="SECONDS",
                   help="seconds of silence run through the network after the audio ends (default: the model's "
                   "setting)")
    g.add_argument("--grammar", default=None, metavar="FILE",
                   help="restrict output to these phrases: a JSON list (Vosk grammar) or one phrase a line; "
                   "add \"[unk]\" to allow anything else")
    g.add_argument("--threads", type=int, default=1, help="CPU threads of the engine (torch or ONNX Runtime)")
    g.add_argument("--engine", choices=ENGINES, default="auto",
                   help="what runs the network; auto: ONNX Runtime where the model has an ONNX graph and "
                   "onnxruntime is installed, torch otherwise")


def recognizer_from_args(args: argparse.Namespace) -> tuple[ServingModel, Recognizer]:
    """Raises CheckpointError for a bad model file, ValueError for a bad LM choice."""
    bundle = load_serving_model(args.model, getattr(args, "engine", "auto"), max(1, args.threads))
    if bundle.engine == "torch":
        import torch

        torch.set_num_threads(max(1, args.threads))
    changes = {k: v for k, v in (("beam_size", args.beam_size), ("lm_weight", getattr(args, "lm_weight", None)),
                                 ("word_bonus", getattr(args, "word_bonus", None)),
                                 ("end_padding_seconds", getattr(args, "end_padding_seconds", None))) if v is not None}
    decoding = dataclasses.replace(bundle.decoding, **changes)
    return bundle, Recognizer(bundle, decoding, load_lm_choice(getattr(args, "lm", "none")))


def grammar_from_args(args: argparse.Namespace, rec: Recognizer) -> Grammar | None:
    """The --grammar file as a checked phrase list; raises GrammarError or OSError with a message."""
    if not getattr(args, "grammar", None):
        return None
    text = Path(args.grammar).read_text(encoding="utf-8")
    try:
        phrases = json.loads(text)
    except json.JSONDecodeError:
        phrases = [line.strip() for line in text.splitlines() if line.strip()]
    return rec.grammar(phrases)

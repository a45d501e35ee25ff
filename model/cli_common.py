"""Argument groups shared by the commands that load and run a model, so they cannot drift."""

from __future__ import annotations

import argparse
import dataclasses

from .checkpoint import ModelBundle, load_model
from .recognize import Recognizer


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and decoding")
    g.add_argument("--model", default=None, help="model file (default: the model embedded in the package)")
    g.add_argument("--beam-size", type=int, default=None,
                   help="CTC beam width; 1 = greedy (default: the model's own setting)")
    g.add_argument("--hotword", action="append", default=[], metavar="PHRASE",
                   help="bias decoding toward this word or phrase (repeatable)")
    g.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def recognizer_from_args(args: argparse.Namespace) -> tuple[ModelBundle, Recognizer]:
    import torch

    torch.set_num_threads(max(1, args.threads))
    bundle = load_model(args.model)
    decoding = bundle.decoding
    if args.beam_size is not None:
        decoding = dataclasses.replace(decoding, beam_size=args.beam_size)
    return bundle, Recognizer(bundle, decoding)

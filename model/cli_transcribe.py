"""`edgescribe transcribe FILE...`: print the transcript of each audio file."""

from __future__ import annotations

import argparse
import sys

from .audio import AudioDecodeError, iter_audio
from .cli_common import add_model_arguments, grammar_from_args, recognizer_from_args
from .container import CheckpointError
from .formats import FORMATS, render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files (anything FFmpeg decodes)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        _, rec = recognizer_from_args(args)
        grammar = grammar_from_args(args, rec)
    except (CheckpointError, ValueError, OSError) as e:  # bad model, LM or grammar file
        print(f"edgescribe: {e}", file=sys.stderr)
        return 1
    status = 0
    for path in args.files:
        try:
            stream = rec.stream(args.hotword, grammar=grammar)
            segments = []
            for chunk in iter_audio(path, rec.sample_rate):
                segments.extend(stream.accept(chunk))
            segments.extend(stream.finish())
        except AudioDecodeError as e:
            print(f"edgescribe: {path}: {e}", file=sys.stderr)
            status = 1
            continue
        out = render(segments, args.format, stream.seconds)
        if len(args.files) > 1 and args.format == "text":
            out = f"{path}: {out}"
        print(out)
    return status

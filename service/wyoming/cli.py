"""`edgescribe wyoming`: the Wyoming protocol server, for Home Assistant's voice assistant.

It takes the settings of `edgescribe serve` that apply to it, as flags and EDGESCRIBE_* variables alike
(service/cli.py), except its port: ``--port`` / EDGESCRIBE_WYOMING_PORT (10300), so that a container's
EDGESCRIBE_PORT=8000 leaves it on Wyoming's usual port.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from ..cli import add_setting_flags, settings_from

log = logging.getLogger(__name__)

SETTINGS = ("host", "wyoming_port", "model", "engine", "threads", "workers", "beam_size", "lm", "max_audio_seconds",
            "min_stream_realtime", "max_streams", "max_message_bytes", "max_hotwords", "idle_timeout",
            "max_connections", "retry_after", "shutdown_timeout")
# What the shared settings mean here, where the HTTP service's help would name its own codes and routes.
HELPS = {
    "workers": "inference threads for utterances",
    "max_audio_seconds": "longest utterance, in seconds (an error event above)",
    "min_stream_realtime": "seconds of audio an utterance must send per second, on average, once idle_timeout has "
                           "passed (live audio sends 1); 0: no floor",
    "max_streams": "utterances transcribed at once; more get an error event (busy)",
    "max_message_bytes": "largest event (its data and audio), in bytes",
    "max_hotwords": "most of a transcribe event's transcript_names and transcript_terms that bias decoding "
                    "(the last ones win)",
    "idle_timeout": "seconds a client may send nothing (within an utterance: no audio) or leave replies unread "
                    "before it is closed",
    "max_connections": "open connections; more get an error event and are closed",
    "shutdown_timeout": "seconds a SIGTERM waits for open utterances to get their transcripts",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser, SETTINGS, flags={"wyoming_port": "port"}, helps=HELPS)
    parser.add_argument("--sentences", metavar="FILE", type=Path,
                        help="Home Assistant sentence templates (YAML): answer only with their sentences, "
                             "as Speech-to-Phrase does, and add each match's intent (default: free transcription)")
    parser.add_argument("--allow-unauthenticated", action="store_true",
                        help="serve other machines even though EDGESCRIBE_API_KEY is set (Wyoming cannot carry a "
                             "key; without this flag such a server listens on loopback only)")


def run(args: argparse.Namespace) -> int:
    from model.container import CheckpointError
    from model.grammar import GrammarError
    from model.lm import LMError

    from ..app import build_recognizer, load_for, model_identity
    from ..memory import fix_mmap_threshold
    from ..metrics import Metrics
    from ..recognizer import Engine
    from ..settings import SettingsError
    from .connection import Service
    from .server import PROGRAM, check_exposure, describe, serve

    fix_mmap_threshold()  # before the model and LM are loaded: see service/memory.py
    try:
        settings = settings_from(args)
        check_exposure(settings, args.allow_unauthenticated)
        bundle = load_for(settings)
        recognizer = build_recognizer(bundle, settings)
        # A template that cannot be compiled stops the start with one line naming the file and the line.
        grammar = None if args.sentences is None else recognizer.templates(
            args.sentences.read_text(encoding="utf-8"), source=str(args.sentences))
    except (SettingsError, CheckpointError, LMError, GrammarError, OSError, UnicodeError) as e:  # TemplateError
        print(f"edgescribe wyoming: {e}", file=sys.stderr)
        return 2
    if settings.api_key is not None and args.allow_unauthenticated:
        log.warning("EDGESCRIBE_API_KEY is set, but Wyoming clients are not asked for it (--allow-unauthenticated)")
    model_id, created = model_identity(settings)
    engine = Engine(recognizer, settings, Metrics(), model_id, created)
    service = Service(engine, settings, describe(settings, model_id).event(), frozenset({PROGRAM, model_id}), grammar)
    mode = "free transcription" if grammar is None else f"only the sentences of {args.sentences}"

    def ready(uri: str) -> None:
        print(f"edgescribe: Wyoming server on {uri} with the {engine.recognizer.engine} engine, {mode} "
              "(Ctrl-C to stop)", file=sys.stderr)

    try:
        asyncio.run(serve(service, settings.host, settings.wyoming_port, ready))
    except OSError as e:  # the port is taken, or the address is not this machine's
        print(f"edgescribe wyoming: cannot listen on tcp://{settings.host}:{settings.wyoming_port}: {e}",
              file=sys.stderr)
        return 2
    return 0

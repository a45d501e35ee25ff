"""The `edgescribe` command: one entry point, a subcommand per job.

Each subcommand lives with the code it drives and is imported only when chosen, so
`edgescribe transcribe` never imports FastAPI and `edgescribe serve` never imports training code.
A subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# NumPy's BLAS (OpenBLAS) would start a thread per core for the filterbank's small mel product, (T, 257)
# by (257, 80) per chunk, and wake them for every chunk of every stream, against the inference threads
# and the other streams: one thread computed it 2x as fast on an idle machine and spent a quarter of a
# loaded server's time. Read once, when NumPy first loads, so it is set before any subcommand imports it;
# torch's and ONNX Runtime's own thread settings are not affected.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "transcribe": ("model.cli_transcribe", "transcribe audio files with a model (the embedded one by default)"),
    "export": ("model.cli_export", "re-encode a model or training checkpoint with a compression codec"),
    "serve": ("service.cli", "start the HTTP/WebSocket transcription service"),
    "train": ("model.training.cli_train", "train or fine-tune a model from JSONL manifests"),
    "eval": ("model.training.cli_eval", "WER, CER and real-time factor of a model on JSONL manifests"),
    "plot": ("model.training.cli_plot", "draw a run's loss and WER curves as a PNG"),
    "lm": ("model.cli_lm", "build or evaluate an n-gram word language model"),
    "bench": ("benchmarks.offline", "offline speed, memory and model-size benchmarks (add --peers to compare)"),
    "bench-service": ("benchmarks.service", "streaming latency and load through a real server on loopback"),
    "bench-engines": ("benchmarks.engines", "ONNX Runtime vs torch: start-up, memory, real-time factor"),
    "wyoming": ("service.wyoming.cli", "speech to text for Home Assistant over the Wyoming protocol (port 10300)"),
}


class NotBuilt(Exception):
    pass


def _load(name: str):
    module_name, _ = SUBCOMMANDS[name]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:  # the subcommand's own module is missing, not one of its imports
            raise NotBuilt(name) from e
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="edgescribe", description="On-device speech transcription.")
    parser.add_argument("--log-level", default="WARNING", help="logging level (DEBUG, INFO, WARNING, ...)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported, to keep start-up fast and imports one-way.
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name, (_, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name == chosen:
            try:
                _load(name).add_arguments(p)
            except NotBuilt:
                print(f"edgescribe {name}: not part of this installation (the service image, for one, leaves "
                      "the benchmarks and training out)", file=sys.stderr)
                return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    return int(_load(args.command).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

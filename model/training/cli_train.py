"""`edgescribe train --train M.jsonl --valid V.jsonl --out RUN_DIR (--max-steps N | --epochs N)`.

Runs unchanged under ``torchrun --nproc-per-node N -m edgescribe.cli train ...`` (DDP).
"""

from __future__ import annotations

import argparse
import sys

from .config import add_train_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_train_arguments(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest good checkpoint in --out (same data order, optimiser, "
                             "scheduler and RNG state); starts afresh when there is none")
    parser.add_argument("--stop-at-step", type=int, default=None, metavar="N",
                        help="end this process at step N with a checkpoint, before the schedule's end (train "
                             "in chunks: the next --resume continues from there); no model is exported")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import CheckpointError
    from .loop import train
    from .manifest import ManifestError

    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f"edgescribe train: {e}", file=sys.stderr)
        return 2
    try:
        result = train(cfg, resume=args.resume, echo=print, stop_after=args.stop_at_step,
                       checkpoint_at_stop=True)
    except (ManifestError, CheckpointError, ValueError) as e:
        print(f"edgescribe train: {e}", file=sys.stderr)
        return 1
    if result.export is not None:
        print(f"model written to {result.export.path}")
    elif args.stop_at_step is not None:
        print(f"stopped at step {result.step} with a checkpoint: continue with --resume")
    return 0

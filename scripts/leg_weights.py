#!/usr/bin/env python3
"""The training weights of a long-run leg (scripts/train_long.sh): real speech at its fixed weights, and the
synthetic corpora scaled together so that they make at most ``--synth-share`` of each epoch's weighted hours.

Why: legs 4 and 6 trained on synthetic corpora that had grown to half and then 72% of an epoch, and both
fell behind their start on real-speech validation; leg 5, at 24%, moved ahead on every figure. A fractional
weight samples a fresh subset of its manifest each epoch (model/training/batching.py), so the synthetic
corpora keep their variety at a lower share.

    python scripts/leg_weights.py --synth-share 0.25 --real a.jsonl:3 --synth b.jsonl:1 --synth c.jsonl:0.5

prints one ``manifest:weight`` per line (what ``edgescribe train --train`` takes), then the epoch's make-up on
standard error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.training.manifest import ManifestError, parse_manifest_arg, read_manifest


def manifest_hours(path: Path) -> float:
    """Hours of audio a JSONL manifest lists (its ``duration`` fields)."""
    try:
        return sum(u.duration for u in read_manifest(path)) / 3600
    except ManifestError as e:
        raise SystemExit(str(e)) from e


def split_spec(spec: str) -> tuple[Path, float]:
    try:
        return parse_manifest_arg(spec)
    except ManifestError as e:
        raise SystemExit(str(e)) from e


def leg_weights(real: list[tuple[Path, float, float]], synth: list[tuple[Path, float, float]],
                share: float) -> tuple[list[tuple[Path, float]], float]:
    """(path, base weight, hours) per corpus -> (path, weight) and the factor the synthetic weights got.
    The factor is at most 1: a small synthetic corpus is never oversampled to reach the share."""
    if not 0 <= share < 1:
        raise SystemExit(f"--synth-share must be in [0, 1), got {share}")
    real_h = sum(w * h for _, w, h in real)
    synth_h = sum(w * h for _, w, h in synth)
    factor = 1.0 if synth_h == 0 else min(1.0, share / (1 - share) * real_h / synth_h)
    return [(p, w) for p, w, _ in real] + [(p, w * factor) for p, w, _ in synth], factor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synth-share", type=float, required=True)
    parser.add_argument("--real", action="append", default=[], metavar="MANIFEST:WEIGHT")
    parser.add_argument("--synth", action="append", default=[], metavar="MANIFEST:WEIGHT")
    args = parser.parse_args(argv)
    real = [(p, w, manifest_hours(p)) for p, w in map(split_spec, args.real)]
    synth = [(p, w, manifest_hours(p)) for p, w in map(split_spec, args.synth)]
    weights, factor = leg_weights(real, synth, args.synth_share)
    for path, weight in weights:
        print(f"{path}:{weight:.4g}")
    hours = {p: h for p, _, h in real + synth}
    real_h = sum(w * hours[p] for p, w in weights[:len(real)])
    synth_h = sum(w * hours[p] for p, w in weights[len(real):])
    print(f"leg weights: real {real_h:.2f} h, synthetic {synth_h:.2f} h per epoch "
          f"({synth_h / max(real_h + synth_h, 1e-9):.0%}; synthetic weights x{factor:.3f})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

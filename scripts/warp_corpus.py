"""New voices from a synthetic corpus: WORLD pitch/formant warps of a seeded sample per warp setting.

    python scripts/warp_corpus.py --source /work/data/synth-hibari/train.jsonl --out /work/data/warp-hibari \\
        --hours-per-warp 1.5 --seed 4                       # the 12 default warps: 12 new voices per source voice
    python scripts/warp_corpus.py ... --warp 0.70:0.88 --warp 1.25:1.10 --workers 1

Resumable: rerun the same command (or a larger --hours-per-warp, or more warps) and what is on disk is
kept. Then `python scripts/synth_corpus.py --out DIR --summary` reports hours per voice. Needs
`pip install pyworld 'setuptools<80'`; costs about 4x real time per worker.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from model.training.warp import DEFAULT_WARPS, Warp, plan_warps, warp_corpus


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", type=Path, required=True, help="the corpus manifest to warp (train.jsonl)")
    p.add_argument("--out", type=Path, required=True, help="output folder: train.jsonl and audio/")
    p.add_argument("--warp", action="append", default=[], metavar="PITCH:FORMANT",
                   help=f"a warp setting, repeatable (default: {' '.join(DEFAULT_WARPS)})")
    p.add_argument("--hours-per-warp", type=float, required=True, help="audio to warp per setting")
    p.add_argument("--seed", type=int, default=0, help="seed of each warp's sample")
    p.add_argument("--workers", type=int, default=1, help="warping processes")
    p.add_argument("--flush-every", type=int, default=200, help="rewrite the manifest after this many")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        warps = [Warp.parse(w) for w in (args.warp or DEFAULT_WARPS)]
        jobs = plan_warps(args.source, warps, args.hours_per_warp, args.seed)
        made, failed = warp_corpus(jobs, args.out, args.workers, args.flush_every)
    except (ValueError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(warps)} warps, {len(jobs)} utterances planned: {made} made this run, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Copy a JSONL manifest with every audio path made absolute, so the copy can live in another folder.

    python scripts/freeze_manifest.py DATA/synth/train.jsonl RUN/data/synth-train.jsonl

A recipe stage freezes its inputs this way before it runs: a corpus that keeps growing cannot change
under a running stage, and the copy still finds its audio. Fails if an audio file is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.training.manifest import read_manifest, write_manifest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    args = p.parse_args()
    utts = list(read_manifest(args.source))  # audio paths come back resolved against the source's folder
    missing = sum(not u.audio.exists() for u in utts)
    if missing:
        print(f"error: {missing} of {len(utts)} audio files in {args.source} are missing", file=sys.stderr)
        return 1
    write_manifest(args.target, ({"audio": str(u.audio.resolve()), "text": u.text, "duration": u.duration, **u.extra}
                                 for u in utts))
    print(f"{args.target}: {len(utts)} utterances, {sum(u.duration for u in utts) / 3600:.2f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())

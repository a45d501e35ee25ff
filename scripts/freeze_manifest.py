"""Copy a JSONL manifest with every audio path made absolute, so the copy can live in another folder.

    python scripts/freeze_manifest.py DATA/synth/train.jsonl RUN/data/synth-train.jsonl

A recipe stage freezes its inputs this way before it runs: a corpus that keeps growing cannot change
under a running stage, and the copy still finds its audio. Fails if an audio file is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    args = p.parse_args()
    rows, missing = [], 0
    with args.source.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            audio = (args.source.parent / row["audio"]).resolve()
            missing += not audio.exists()
            rows.append({**row, "audio": str(audio)})
    if missing:
        print(f"error: {missing} of {len(rows)} audio files in {args.source} are missing", file=sys.stderr)
        return 1
    args.target.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.target.with_name(f".{args.target.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, args.target)
    print(f"{args.target}: {len(rows)} utterances, {sum(r['duration'] for r in rows) / 3600:.2f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the real-speech manifests the default model trains and validates on (issue 5's recipe).

Reads ../shared/data (never writes there) and writes manifests with absolute audio paths into --out:
- train.jsonl: speechocean762 train (all but the validation speakers), FSDD train recordings 10-49,
  and 80% of the Asterisk prompts (chosen by a hash of the file name, so the split is stable).
- valid.jsonl: speechocean762 train utterances of 6 held-out speakers, FSDD train recordings 5-9:
  model selection never looks at a test set.
- asterisk_heldout.jsonl: the other 20% of the Asterisk prompts, for honest scoring (the issue
  trains on the prompts, so scoring on all of them would score training data).
- vctk.jsonl, grid.jsonl, wakewords.jsonl (issue 11): the newer sets, each in its own manifest so the
  recipe can weight them (GRID and the wake words teach a few phrases from many takes: low weights).
  Every tenth VCTK sentence goes to valid_vctk.jsonl instead: open read speech to watch, apart from
  valid.jsonl, whose figures stay comparable with earlier runs.
LibriSpeech dev is never read here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

VALID_SPEAKERS = {"0001", "0026", "0053", "0103", "0482", "0813"}  # 6 of the 125 train speakers


def rows(manifest: Path):
    with manifest.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                row["audio"] = str((manifest.parent / row["audio"]).resolve())
                yield row


def asterisk_heldout(audio: str) -> bool:
    return hashlib.sha1(Path(audio).name.encode()).digest()[0] < 256 * 0.2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--out", default="/work/data/real")
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, valid, held = [], [], []
    for r in rows(data / "speechocean762" / "train.jsonl"):
        (valid if r.get("speaker") in VALID_SPEAKERS else train).append(r)
    for r in rows(data / "fsdd" / "train.jsonl"):
        take = int(Path(r["audio"]).stem.rsplit("_", 1)[1])
        (valid if take < 10 else train).append(r)
    for r in rows(data / "asterisk-prompts" / "all.jsonl"):
        if r["text"].strip():
            (held if asterisk_heldout(r["audio"]) else train).append(r)
    vctk, valid_vctk = [], []
    for i, r in enumerate(rows(data / "vctk-p239" / "train.jsonl")):
        (valid_vctk if i % 10 == 0 else vctk).append(r)
    grid = list(rows(data / "grid-s1" / "train.jsonl"))
    wake = list(rows(data / "picovoice-wakewords" / "train.jsonl"))
    for name, rs in (("train", train), ("valid", valid), ("asterisk_heldout", held), ("vctk", vctk),
                     ("valid_vctk", valid_vctk), ("grid", grid), ("wakewords", wake)):
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for r in rs:
                f.write(json.dumps(r) + "\n")
        hours = sum(r["duration"] for r in rs) / 3600
        print(f"{name}: {len(rs)} utterances, {hours:.2f} h -> {out / name}.jsonl")


if __name__ == "__main__":
    main()

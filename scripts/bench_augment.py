"""What each waveform augmentation costs the data loader, per second of audio, on one core.

    python scripts/bench_augment.py DATA/runs/long/data/round-1/synth-train.jsonl --n 40

The loader (one process) must keep up with training (~100 audio s/s on one bf16 thread here), so a
lever's probability times its cost must stay well under ~10 ms per audio second in all; the
probabilities in scripts/train_long.sh come from this table.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from model.audio import load_audio
from model.training.augment import (
    add_babble,
    add_noise,
    codec_round_trip,
    colour,
    reverberate,
    speed_perturb,
    synthetic_rir,
)
from model.training.manifest import read_manifest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest")
    p.add_argument("--n", type=int, default=40, help="utterances, drawn with a fixed seed")
    args = p.parse_args()
    utts = list(read_manifest(args.manifest))
    random.Random(0).shuffle(utts)
    waves = [load_audio(u.audio, 16000) for u in utts[: args.n]]
    seconds = sum(w.size for w in waves) / 16000
    rng = np.random.default_rng(0)
    rir = synthetic_rir(0.5, 5, 16000, rng)
    levers = {
        "speed": lambda w: speed_perturb(w, 1.1), "noise": lambda w: add_noise(w, 10, rng),
        "reverb": lambda w: reverberate(w, rir), "eq": lambda w: colour(w, 6, rng),
        "babble": lambda w: add_babble(w, waves[:3], 10), "lossy mp3 32k": lambda w: codec_round_trip(w, "mp3", 32),
        "lossy opus 16k": lambda w: codec_round_trip(w, "opus", 16),
    }
    print(f"{len(waves)} utterances, {seconds:.0f} s of audio\n\n| lever | ms per audio second |\n|---|---|")
    for name, fn in levers.items():
        start = time.perf_counter()
        for w in waves:
            fn(w)
        print(f"| {name} | {1000 * (time.perf_counter() - start) / seconds:.2f} |")


if __name__ == "__main__":
    main()

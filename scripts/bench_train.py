"""Training throughput on this machine: audio seconds trained per wall-clock second, per configuration.

Runs `edgescribe train` for a few steps in each configuration on the same data, seed and model and
reads the `audio_seconds_per_second` rows the trainer writes to metrics.jsonl (all ranks' audio
counted), skipping the first rows (loader start-up, allocator warm-up). The default model's network
unless --hidden/--depth/--no-shared say otherwise.

    python scripts/bench_train.py --train /work/data/real/train.jsonl --steps 30
    python scripts/bench_train.py ... --configs fp32:1x1 bf16:1x1 bf16:2x1     # precision:PROCSxTHREADS

PROCS > 1 runs under torchrun (DistributedDataParallel, gloo); each process has one data-loading
worker. Nothing else should run on the machine meanwhile: the figures are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIGS = ("fp32:1x1", "fp32:1x2", "bf16:1x1", "bf16:1x2", "fp32:2x1", "bf16:2x1")


@dataclass(frozen=True)
class Setup:
    precision: str
    procs: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> Setup:
        try:
            precision, shape = text.split(":")
            procs, threads = (int(n) for n in shape.split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected PRECISION:PROCSxTHREADS (bf16:2x1), got {text!r}") from None
        return cls(precision, procs, threads)

    def __str__(self) -> str:
        return f"{self.precision}:{self.procs}x{self.threads}"


def run(setup: Setup, args: argparse.Namespace, out: Path) -> list[float]:
    train = [*(f"--train={m}" for m in args.train), f"--out={out}", f"--max-steps={args.steps}",
             f"--precision={setup.precision}", f"--threads={setup.threads}", "--workers=1", "--no-progress",
             "--log-every=5", f"--checkpoint-every={args.steps}", "--warmup-steps=5", "--seed=0",
             f"--max-batch-seconds={args.batch_seconds}", *args.extra]
    if setup.procs == 1:
        command = [sys.executable, "-m", "edgescribe.cli", "train", *train]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={setup.procs}",
                   "-m", "edgescribe.cli", "train", *train]
    env = {**os.environ, "OMP_NUM_THREADS": str(setup.threads), "GLOO_SOCKET_IFNAME": "lo"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    speeds = [r["audio_seconds_per_second"] for r in rows if "audio_seconds_per_second" in r]
    return speeds[args.skip:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train", action="append", required=True, help="training manifest(s), as for edgescribe train")
    p.add_argument("--steps", type=int, default=30, help="steps per configuration")
    p.add_argument("--skip", type=int, default=1, help="first metrics rows (5 steps each) left out")
    p.add_argument("--batch-seconds", type=float, default=160.0, help="--max-batch-seconds of each process")
    p.add_argument("--configs", nargs="+", type=Setup.parse, default=[Setup.parse(c) for c in DEFAULT_CONFIGS])
    p.add_argument("--json", help="also write {config: audio seconds per second} to this file")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more edgescribe train flags, last")
    args = p.parse_args()
    print(f"{'config':<10} {'audio s/s':>10} {'spread':>8}  (median of {args.steps // 5 - args.skip} windows "
          f"of 5 steps; {args.batch_seconds:g} s batches per process)")
    base = None
    figures: dict[str, float] = {}
    for setup in args.configs:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                speeds = run(setup, args, Path(tmp) / "run")
            except subprocess.CalledProcessError as e:
                print(f"{setup!s:<10} failed: {e.stderr.strip().splitlines()[-1] if e.stderr else e}")
                continue
        median = statistics.median(speeds)
        figures[str(setup)] = median
        base = base or median
        spread = (max(speeds) - min(speeds)) / median if len(speeds) > 1 else 0.0
        print(f"{setup!s:<10} {median:>10.1f} {spread:>7.0%}  x{median / base:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

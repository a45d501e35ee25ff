"""Progress of scripts/compare_architectures.sh: per candidate, steps, CPU-minutes, last validation figures.

    python scripts/arch_progress.py [RUNS_DIR]   (default /work/data/runs/arch)

CPU-minutes are the wall time between a run's first and last metrics rows (one process, one thread).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    arch = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/data/runs/arch")
    budget = {}
    for line in (arch / "steps.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, steps = line.split()[:2]
            budget[name] = steps
    print("| candidate | steps (budget) | steps done | CPU-minutes so far | last validation WER / CER "
          "(greedy, fp32) | kmeans4 file |")
    print("|---|---|---|---|---|---|")
    total = 0.0
    for name, steps in budget.items():
        metrics = arch / name / "metrics.jsonl"
        if not metrics.exists():
            print(f"| {name} | {steps} | 0 | 0 | - | - |")
            continue
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        times = [r["time"] for r in rows if "time" in r]
        minutes = (max(times) - min(times)) / 60 if times else 0.0
        total += minutes
        valid = [r for r in rows if "valid_wer" in r]
        last = "-"
        if valid:
            last = f"{valid[-1]['valid_wer']:.1%} / {valid[-1]['valid_cer']:.1%} (step {valid[-1]['step']})"
        model = arch / name / "model.esm"
        size = f"{model.stat().st_size / 1e6:.2f} MB" if model.exists() else "-"
        print(f"| {name} | {steps} | {max(r['step'] for r in rows)} | {minutes:.0f} | {last} | {size} |")
    print(f"\nCPU-hours so far (one process, one thread each): {total / 60:.2f}")


if __name__ == "__main__":
    main()

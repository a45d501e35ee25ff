"""`edgescribe plot RUN_DIR`: the run's training loss and validation WER/CER curves as one PNG."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a training run folder (holds metrics.jsonl)")
    parser.add_argument("--out", default=None, help="PNG to write (default: RUN_DIR/curves.png)")


def read_metrics(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            rows.append(json.loads(line))
    return rows


def plot(rows: list[dict], out: Path) -> None:
    try:
        import matplotlib
    except ImportError as e:
        raise RuntimeError("plotting needs matplotlib: pip install 'edgescribe[train]'") from e
    matplotlib.use("Agg")  # files only; no display on a training box
    import matplotlib.pyplot as plt

    train = [r for r in rows if "loss" in r]
    valid = [r for r in rows if "valid_wer" in r]
    fig, (ax_loss, ax_wer) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    ax_loss.set_ylabel("CTC loss per utterance")
    ax_loss.set_yscale("log")  # CTC loss falls by orders of magnitude early on
    ax_loss.grid(alpha=0.3)
    if valid:
        steps = [r["step"] for r in valid]
        ax_wer.plot(steps, [100 * r["valid_wer"] for r in valid], marker="o", label="WER")
        ax_wer.plot(steps, [100 * r["valid_cer"] for r in valid], marker="o", label="CER")
        ax_wer.legend()
    else:
        ax_wer.text(0.5, 0.5, "no validation rows", ha="center", va="center", transform=ax_wer.transAxes)
    ax_wer.set_ylabel("validation error (%)")
    ax_wer.set_xlabel("step")
    ax_wer.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    metrics = run_dir / "metrics.jsonl"
    try:
        rows = read_metrics(metrics)
    except (OSError, json.JSONDecodeError) as e:
        print(f"edgescribe plot: cannot read {metrics}: {e}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else run_dir / "curves.png"
    try:
        plot(rows, out)
    except RuntimeError as e:
        print(f"edgescribe plot: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0

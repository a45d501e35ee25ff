#!/usr/bin/env python3
"""EdgeScribe, PocketSphinx and Whisper tiny.en on the same files, in one process.

Prints a markdown table of WER, CER and real-time factor per manifest and system, and the models'
sizes on disk; ``--json`` writes the same figures, ``--details`` every hypothesis. Scoring follows
``../shared/EVAL.md`` (``model/scoring.py``); the peers' setup is in ``benchmarks/peers.py``.

    pip install -e '.[peers]'
    python scripts/compare_peers.py --limit 50 --json peers.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a file from a checkout: make `model` importable

from benchmarks.peers import (  # noqa: E402
    PEER_FACTORIES,
    EdgeScribeSystem,
    PeerUnavailable,
    SystemScore,
    UtteranceResult,
    compare_on_manifest,
)
from model.checkpoint import CheckpointError  # noqa: E402
from model.cli_common import add_model_arguments, recognizer_from_args  # noqa: E402
from model.scoring import normalize_for_scoring  # noqa: E402
from model.training.manifest import ManifestError, read_manifest  # noqa: E402

log = logging.getLogger("compare_peers")

DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_MANIFESTS = (
    "speechocean762/test.jsonl",
    "fsdd/test.jsonl",
    "librispeech-dev-clean/dev.jsonl",
    "asterisk-prompts/all.jsonl",
)
SYSTEMS = ("edgescribe", *PEER_FACTORIES)


@dataclass(frozen=True)
class CompareConfig:
    data: Path
    manifests: tuple[str, ...]
    limit: int | None
    systems: tuple[str, ...]
    json_path: Path | None
    details_path: Path | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder that manifest names are relative to")
    parser.add_argument("--manifest", action="append", default=None, metavar="JSONL",
                        help=f"manifest to score, repeatable (default: {', '.join(DEFAULT_MANIFESTS)})")
    parser.add_argument("--limit", type=int, default=None,
                        help="score only the first N lines of each manifest (default: all)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {', '.join(SYSTEMS)}")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--details", dest="details_path", type=Path, default=None,
                        help="write every utterance's reference and hypotheses here (JSONL)")
    add_model_arguments(parser)  # EdgeScribe's --model, --beam-size; --threads applies to every system


def config_from_args(args: argparse.Namespace) -> CompareConfig:
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        raise ValueError(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    return CompareConfig(args.data, tuple(args.manifest or DEFAULT_MANIFESTS), args.limit, systems,
                         args.json_path, args.details_path)


def resolve_manifest(data: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() or path.exists() else data / path


def select_utterances(manifest: Path, limit: int | None) -> list[tuple[Path, str]]:
    """The first ``limit`` lines, less those whose normalised reference is empty (nothing to score)."""
    chosen = []
    for n, utt in enumerate(read_manifest(manifest)):
        if limit is not None and n >= limit:
            break
        if normalize_for_scoring(utt.text):
            chosen.append((utt.audio, utt.text))
    return chosen


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}%"


def markdown(scores: list[SystemScore], sizes: dict[str, int], threads: int) -> str:
    lines = [
        f"| set | system | utterances | audio (s) | WER | CER | RTF ({threads} thread{'s' * (threads > 1)}) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        lines.append(f"| {s.manifest} | {s.system} | {s.rates.utterances} | {s.audio_seconds:.0f} | "
                     f"{_pct(s.rates.wer)} | {_pct(s.rates.cer)} | {s.rtf:.3f} |")
    lines += ["", "| system | model on disk |", "|---|---|"]
    lines += [f"| {name} | {size / 1e6:.2f} MB |" for name, size in sizes.items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        _, recognizer = recognizer_from_args(args)
        systems = [EdgeScribeSystem(recognizer, args.model, args.hotword)] if "edgescribe" in cfg.systems else []
        systems += [PEER_FACTORIES[name](args.threads) for name in cfg.systems if name in PEER_FACTORIES]
        manifests = [(name, resolve_manifest(cfg.data, name)) for name in cfg.manifests]
        selections = [(name, select_utterances(path, cfg.limit)) for name, path in manifests]
    except (ValueError, CheckpointError, PeerUnavailable, ManifestError) as e:
        print(f"compare_peers: {e}", file=sys.stderr)
        return 2
    sizes = {s.name: s.size_bytes() for s in systems}
    scores: list[SystemScore] = []
    details: list[UtteranceResult] = []
    started = time.perf_counter()
    for name, utterances in selections:
        manifest_scores, results = compare_on_manifest(name, utterances, systems)
        scores += manifest_scores
        details += results
    table = markdown(scores, sizes, args.threads)
    print(table)
    if cfg.json_path:
        report = {
            "limit": cfg.limit,
            "threads": args.threads,
            "model": args.model,
            "seconds": round(time.perf_counter() - started, 1),
            "sizes_bytes": sizes,
            "scores": [{**dataclasses.asdict(s), "rtf": s.rtf} for s in scores],
        }
        cfg.json_path.write_text(json.dumps(report, indent=2) + "\n")
    if cfg.details_path:
        with cfg.details_path.open("w", encoding="utf-8") as f:
            for r in details:
                f.write(json.dumps(dataclasses.asdict(r), ensure_ascii=False) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--log-level", default="INFO", help="logging level")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # it logs a line per file at INFO
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

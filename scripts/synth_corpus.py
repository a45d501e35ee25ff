#!/usr/bin/env python3
"""Turn sentence files and generated prompts into a manifest of synthetic speech (every installed voice).

    python scripts/synth_corpus.py --out /data/synth --text everyday.txt.gz:20000 --generate digits:5000

Resumable: run the same command again to finish or grow a corpus; what is on disk is skipped.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.training.synth import RunReport, SynthConfig, build_corpus, summarise_manifest  # noqa: E402
from model.training.synth_prompts import GENERATED_KINDS  # noqa: E402
from model.training.synth_voices import ENGINES, SynthError, discover_voices, voice_families  # noqa: E402


def _count_arg(value: str) -> tuple[str, int]:
    head, sep, count = value.rpartition(":")
    if not sep or not head:
        raise argparse.ArgumentTypeError(f"{value!r}: use NAME:COUNT")
    try:
        return head, int(count)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r}: COUNT must be an integer") from e


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, help="corpus folder: train.jsonl, valid.jsonl, audio/ (required)")
    p.add_argument("--text", type=_count_arg, action="append", default=[], metavar="FILE:N",
                   help="take N sentences from FILE (.txt or .txt.gz, one a line); repeatable")
    p.add_argument("--generate", type=_count_arg, action="append", default=[], metavar="KIND:N",
                   help=f"N generated utterances of KIND, one of {', '.join(GENERATED_KINDS)}; repeatable")
    p.add_argument("--valid-sentences", type=int, default=0,
                   help="sentences held out from each --text file for valid.jsonl")
    p.add_argument("--max-words", type=int, default=12, help="skip longer sentences")
    p.add_argument("--word-list-size", type=int, default=4000,
                   help="single words are drawn from this many most frequent words of the texts")
    p.add_argument("--engine", action="append", choices=list(ENGINES), default=[],
                   help="use this engine (repeatable; default: espeak-ng, flite and festival, those installed)")
    p.add_argument("--rate", type=float, nargs=2, default=(0.8, 1.25), metavar=("MIN", "MAX"),
                   help="speaking-rate factor range")
    p.add_argument("--pitch", type=float, nargs=2, default=(-3.0, 3.0), metavar=("MIN", "MAX"),
                   help="pitch shift range in semitones")
    p.add_argument("--workers", type=int, default=2, help="synthesis processes")
    p.add_argument("--max-hours", type=float, default=None, help="stop once train.jsonl holds this much audio")
    p.add_argument("--flush-every", type=int, default=500, help="rewrite the manifest after this many utterances")
    p.add_argument("--seed", type=int, default=1, help="the same seed plans the same corpus")
    p.add_argument("--list-voices", action="store_true", help="list the voices found and exit")
    p.add_argument("--summary", action="store_true",
                   help="print the hours per voice family and kind of the corpus in --out (even mid-run) and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    return SynthConfig(
        out_dir=args.out,
        texts=tuple((Path(f), n) for f, n in args.text),
        generated=tuple(args.generate),
        valid_sentences=args.valid_sentences,
        max_words=args.max_words,
        word_list_size=args.word_list_size,
        engines=tuple(args.engine),
        rate_range=tuple(args.rate),
        pitch_range=tuple(args.pitch),
        workers=args.workers,
        max_hours=args.max_hours,
        flush_every=args.flush_every,
        seed=args.seed,
    )


def print_report(name: str, report: RunReport) -> None:
    print(f"\n{name}: {report.manifest}: {report.utterances} utterances, {report.hours:.2f} h", end="")
    print(f" ({report.made} made now, {report.skipped} already there, {report.failed} failed)"
          if report.made or report.skipped or report.failed else "")
    print("  hours per voice family:")
    for family, seconds in report.seconds_per_family.items():
        print(f"    {family:<32} {seconds / 3600:7.3f}")
    print("  hours per prompt kind:")
    for kind, seconds in report.seconds_per_kind.items():
        print(f"    {kind:<32} {seconds / 3600:7.3f}")
    for failure in report.failures[:10]:
        print(f"  failed: {failure}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is None and not args.list_voices:
        parser.error("--out is required")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.list_voices:
            voices = discover_voices(args.engine or None)
            for family, members in voice_families(voices).items():
                print(f"{family:<32} {len(members):4d}  {' '.join(v.name for v in members[:6])}"
                      + (" ..." if len(members) > 6 else ""))
            print(f"{len(voices)} voices in {len(voice_families(voices))} families")
            return 0
        if args.summary:
            for name in ("train", "valid"):
                if (args.out / f"{name}.jsonl").exists():
                    print_report(name, summarise_manifest(args.out / f"{name}.jsonl"))
            return 0
        config = config_from_args(args)
        result = build_corpus(config, progress=not args.no_progress)
    except (SynthError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    families = voice_families(result.voices)
    print(f"voices found: {len(result.voices)} in {len(families)} families: {', '.join(families)}")
    stats = result.text_stats
    print(f"sentences read: {stats.read}; skipped: {stats.too_long} too long, {stats.unknown_chars} with "
          f"characters outside the vocabulary, {stats.duplicates} duplicates")
    for example in stats.examples:
        print(f"  outside the vocabulary: {example}")
    print_report("train", result.train)
    if result.valid is not None:
        print_report("valid", result.valid)
    print(f"\nhours per voice: {config.out_dir / 'hours_per_voice.tsv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Write a JSONL manifest from a corpus in one of the common layouts.

    python scripts/import_data.py librispeech LibriSpeech/train-clean-100 --out data/ls100.jsonl
    python scripts/import_data.py common-voice cv-corpus-17.0/en/train.tsv --out data/cv_train.jsonl
    python scripts/import_data.py kaldi data/train --out data/kaldi_train.jsonl
    python scripts/import_data.py folder recordings/ --out data/mine.jsonl

Audio paths are written relative to the manifest's folder; transcripts as the source has them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.training import importers  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="source", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    def add(name: str, help: str, arg: str, arg_help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=help, formatter_class=fmt)
        s.add_argument(arg, type=Path, help=arg_help)
        s.add_argument("--out", type=Path, required=True, help="manifest to write (.jsonl)")
        s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
        return s

    add("librispeech", "a LibriSpeech folder (*.trans.txt beside the .flac files)", "root", "LibriSpeech folder")
    cv = add("common-voice", "a Common Voice release TSV (train.tsv, validated.tsv, ...)", "tsv", "the TSV file")
    cv.add_argument("--clips", type=Path, default=None, help="clips folder (default: clips/ beside the TSV)")
    k = add("kaldi", "a Kaldi data dir (text, wav.scp, optional utt2spk)", "data_dir", "the data dir")
    k.add_argument("--extract-dir", type=Path, default=None,
                   help="where to keep the audio of wav.scp entries that are commands (as FLAC)")
    add("folder", "audio files with same-named .txt transcripts (searched recursively)", "root", "the folder")
    return p


def candidates(args: argparse.Namespace):
    if args.source == "librispeech":
        return importers.librispeech(args.root)
    if args.source == "common-voice":
        return importers.common_voice(args.tsv, args.clips)
    if args.source == "kaldi":
        return importers.kaldi(args.data_dir, args.extract_dir)
    return importers.folder(args.root)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        report = importers.write_import(candidates(args), args.out)
    except (importers.SourceLayoutError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{report.manifest}: {report.utterances} utterances, {report.hours:.2f} h")
    for reason, n in sorted(report.skipped.items()):
        print(f"  skipped {n}: {reason}")
    for example in report.examples:
        print(f"    e.g. {example}")
    if report.outside_vocabulary:
        print(f"  {report.outside_vocabulary} transcripts have characters outside the vocabulary; "
              "training will skip them")
    return 0


if __name__ == "__main__":
    sys.exit(main())

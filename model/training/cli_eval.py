"""`edgescribe eval [--model FILE] MANIFEST...`: WER, CER and real-time factor per manifest.

Audio goes through the same streaming recogniser as `edgescribe transcribe` (so the numbers are
what users get, beam search and hotwords included), and both sides are scored after
``model.tokens.normalize_text``. The real-time factor is recognition time over audio time, decoding
of the audio file excluded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..audio import AudioDecodeError, load_audio
from ..checkpoint import CheckpointError
from ..cli_common import add_model_arguments, grammar_from_args, recognizer_from_args
from ..formats import full_text
from ..grammar import Grammar
from ..recognize import Recognizer
from ..tokens import normalize_text
from .manifest import ManifestError, read_manifest
from .metrics import UtteranceScore, error_rates, score_utterance


@dataclass(frozen=True)
class ScoredUtterance:
    manifest: str
    audio: str
    score: UtteranceScore


@dataclass(frozen=True)
class ManifestResult:
    manifest: str
    utterances: int
    unreadable: int
    hours: float
    wer: float
    cer: float
    rtf: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="+", metavar="MANIFEST", help="JSONL manifests to score")
    parser.add_argument("--limit", type=int, default=None, help="only the first N utterances of each manifest")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--errors", metavar="FILE", default=None,
                        help="write the worst utterances (reference and hypothesis) to FILE")
    parser.add_argument("--errors-count", type=int, default=50, help="how many utterances --errors writes")
    add_model_arguments(parser)


def evaluate_manifest(rec: Recognizer, manifest: str, hotwords: list[str], limit: int | None,
                      grammar: Grammar | None = None):
    scored: list[ScoredUtterance] = []
    unreadable = 0
    audio_seconds = compute_seconds = 0.0
    for n, utt in enumerate(read_manifest(manifest)):
        if limit is not None and n >= limit:
            break
        try:
            wave = load_audio(utt.audio, rec.sample_rate)
        except AudioDecodeError as e:
            print(f"edgescribe eval: {utt.audio}: {e}", file=sys.stderr)
            unreadable += 1
            continue
        start = time.perf_counter()
        segments = rec.transcribe(wave, hotwords, grammar)
        compute_seconds += time.perf_counter() - start
        audio_seconds += wave.size / rec.sample_rate
        score = score_utterance(normalize_text(utt.text), normalize_text(full_text(segments)))
        scored.append(ScoredUtterance(manifest, str(utt.audio), score))
    rates = error_rates([s.score for s in scored])
    result = ManifestResult(manifest, len(scored), unreadable, audio_seconds / 3600, rates.wer, rates.cer,
                            compute_seconds / max(audio_seconds, 1e-9))
    return result, scored


def write_errors(path: str, scored: list[ScoredUtterance], count: int) -> None:
    worst = sorted(scored, key=lambda s: (-s.score.word_errors, -s.score.wer, s.audio))[:count]
    lines = []
    for s in worst:
        sc = s.score
        lines.append(f"# {s.audio} ({s.manifest}): {sc.word_errors} word errors / {sc.words} words, "
                     f"{sc.char_errors} char errors / {sc.chars} chars")
        lines += [f"REF: {sc.ref}", f"HYP: {sc.hyp}", ""]
    Path(path).write_text("\n".join(lines), encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    try:
        _, rec = recognizer_from_args(args)
        grammar = grammar_from_args(args, rec)
    except (CheckpointError, ValueError, OSError) as e:  # bad model, LM or grammar file
        print(f"edgescribe eval: {e}", file=sys.stderr)
        return 1
    results: list[ManifestResult] = []
    all_scored: list[ScoredUtterance] = []
    for manifest in args.manifests:
        try:
            result, scored = evaluate_manifest(rec, manifest, args.hotword, args.limit, grammar)
        except ManifestError as e:
            print(f"edgescribe eval: {e}", file=sys.stderr)
            return 1
        results.append(result)
        all_scored += scored
    if args.errors:
        write_errors(args.errors, all_scored, args.errors_count)
    if args.json:
        print(json.dumps({"model": args.model or "embedded", "results": [asdict(r) for r in results]}, indent=2))
        return 0
    width = max(len("manifest"), *(len(r.manifest) for r in results))
    print(f"{'manifest':<{width}}  {'utts':>6}  {'hours':>6}  {'WER':>7}  {'CER':>7}  {'RTF':>6}")
    for r in results:
        print(f"{r.manifest:<{width}}  {r.utterances:>6}  {r.hours:>6.2f}  {r.wer:>7.2%}  {r.cer:>7.2%}  {r.rtf:>6.3f}"
              + (f"  ({r.unreadable} unreadable)" if r.unreadable else ""))
    return 0

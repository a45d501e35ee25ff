"""`edgescribe lm build|eval`: make a word n-gram LM from text, or measure how well one fits a text."""

from __future__ import annotations

import argparse
import sys
import time

from .lm import BuildConfig, LMError, build_lm, load_lm, perplexity, read_sentences, save_lm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lm_command", metavar="ACTION", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    b = sub.add_parser("build", formatter_class=fmt,
                       help="build an interpolated modified Kneser-Ney LM from plain or .gz text")
    b.add_argument("text", nargs="+", metavar="TEXT", help="text files, one sentence per line (.gz is read too)")
    b.add_argument("--out", required=True, metavar="FILE",
                   help="output: .arpa or .arpa.gz writes ARPA; any other name the compact binary format")
    b.add_argument("--order", type=int, default=BuildConfig.order, help="n-gram order")
    b.add_argument("--prune", type=int, nargs="+", default=list(BuildConfig.min_counts), metavar="COUNT",
                   help="minimum count per order, unigrams first (the unigram value is not used: see "
                        "--min-word-count); the last value repeats for higher orders. '1 2 2' drops "
                        "bigrams and trigrams seen once")
    b.add_argument("--entropy-prune", type=float, default=BuildConfig.entropy_threshold, metavar="THRESHOLD",
                   help="Stolcke relative-entropy pruning threshold (0 = off; 1e-8..1e-7 for small LMs)")
    b.add_argument("--min-word-count", type=int, default=BuildConfig.min_word_count,
                   help="words seen fewer times become <unk>")
    b.add_argument("--max-vocab", type=int, default=BuildConfig.max_vocab,
                   help="keep at most this many most frequent words (0 = all)")
    e = sub.add_parser("eval", formatter_class=fmt, help="perplexity and out-of-vocabulary rate of an LM on text")
    e.add_argument("lm", metavar="FILE", help="an LM: ARPA (.arpa, .arpa.gz) or binary")
    e.add_argument("text", nargs="+", metavar="TEXT", help="text files, one sentence per line (.gz is read too)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.lm_command == "build":
            return _build(args)
        return _eval(args)
    except LMError as e:
        print(f"edgescribe lm: {e}", file=sys.stderr)
        return 1


def _build(args: argparse.Namespace) -> int:
    cfg = BuildConfig(order=args.order, min_word_count=args.min_word_count, max_vocab=args.max_vocab,
                      min_counts=tuple(args.prune), entropy_threshold=args.entropy_prune)
    t0 = time.perf_counter()
    table = build_lm(read_sentences(args.text), cfg)
    save_lm(table, args.out)
    sizes = " ".join(f"{n}-grams={k}" for n, k in enumerate(table.size(), start=1))
    print(f"wrote {args.out}: {sizes}, vocabulary {len(table.vocab)} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    lm = load_lm(args.lm)
    result = perplexity(lm, read_sentences(args.text))
    if result.words == 0:
        print("edgescribe lm: no words in the text", file=sys.stderr)
        return 1
    print(f"sentences {result.sentences}  words {result.words}  OOV {result.oov} ({100 * result.oov_rate:.2f}%)  "
          f"perplexity {result.perplexity:.1f}")
    return 0

#!/usr/bin/env python3
"""Cost of CTC decoding per 200 ms of audio on one thread: greedy, beam, beam + LM, lexicon, grammar.

No acoustic model is needed: log-probabilities are made to look like a CTC model's (mostly blank
frames, one peaked frame per character, a few confusable letters), from everyday-text sentences,
plus a "flat" case (an untrained model: every symbol about equally likely), the worst case for
the beam. Each sentence is decoded the streaming way: ``advance`` per 5-frame (200 ms) chunk
with a partial result after every chunk, then the final result at the endpoint.

    python scripts/bench_decoder.py [--lm model/assets/default_lm.eslm] [--sentences 30] [--flashlight]
                                    [--loop compiled|python|both]

``--loop``: the beam search's frame loop, compiled (model/_ctcbeam.c, what serving uses when it is built)
or the Python one (what runs without a C compiler); ``both`` prints one table per loop, same input.

The default sentences come from everyday.txt.gz, which the shipped LM was built from, so their WER
flatters the LM; give ``--text`` held-out sentences (gzip, one a line) for a fair WER. Costs do
not depend on it.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import model.ctc as ctc  # noqa: E402
from model.config import DecodingConfig  # noqa: E402
from model.ctc import BeamSearch, greedy_decode  # noqa: E402
from model.grammar import Grammar, lexicon  # noqa: E402
from model.lm import NgramLM, load_default_lm, load_lm, write_arpa  # noqa: E402
from model.tokens import Vocabulary, normalize_text  # noqa: E402
from model.training.metrics import error_rates, score_utterance  # noqa: E402

CHUNK_FRAMES = 5  # 200 ms of 40 ms output frames
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
COMMANDS = ["turn on the light", "turn off the light", "what time is it", "call mom", "stop", "play music",
            "volume up", "volume down", "next song", "yes", "no", "cancel", "[unk]"]


def peaky_log_probs(text: str, vocab: Vocabulary, rng: random.Random) -> torch.Tensor:
    """(T, V): 1-2 blank frames around each character, the character at 0.35-0.95 and a rival
    letter with most of the rest, so that about one character in six loses to its rival (greedy
    spells it wrong) and words must be recovered from context."""
    index = {s: i for i, s in enumerate(vocab.symbols)}
    letters = [i for s, i in index.items() if s.isalpha()]
    rows = []

    def frame(sym: int, p: float) -> None:
        row = torch.full((len(vocab),), 1e-6)  # a trained CTC model's floor: far below prune_log_prob
        rival = rng.choice(letters)
        row[rival] += (1 - p) * 0.8
        row[0] += (1 - p) * 0.2 if sym != 0 else 0.0
        row[sym] += p
        rows.append(row / row.sum())

    for ch in text:
        for _ in range(rng.randint(1, 2)):
            frame(0, 0.95)
        frame(index[ch], rng.uniform(0.35, 0.95))
    frame(0, 0.95)
    return torch.stack(rows).log()


def flat_log_probs(n_frames: int, vocab: Vocabulary, gen: torch.Generator) -> torch.Tensor:
    return (torch.randn(n_frames, len(vocab), generator=gen) * 0.5).log_softmax(-1)


def run_stream(decoder: BeamSearch | None, lp: torch.Tensor, vocab: Vocabulary) -> tuple[list[float], str]:
    """CPU seconds per 200 ms chunk (advance + partial; the last chunk includes the final result).

    This thread's CPU time, not wall time: on a shared machine other jobs would otherwise be
    counted; on an idle device the two agree."""
    times = []
    state = decoder.start() if decoder else None
    chunks = lp.split(CHUNK_FRAMES)
    text = ""
    for i, chunk in enumerate(chunks):
        t0 = time.thread_time()
        if decoder is None:
            text = greedy_decode(lp[: (i + 1) * CHUNK_FRAMES], vocab).text  # what Stream.partial does today
        else:
            decoder.advance(state, chunk)
            text = decoder.best(state, final=i == len(chunks) - 1).text
        times.append(time.thread_time() - t0)
    return times, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--lm", default=None, help="LM file (default: the shipped one)")
    parser.add_argument("--text", default=str(Path(__file__).resolve().parents[2] / "shared/text/everyday.txt.gz"),
                        help="sentences to spell (never an evaluation transcript)")
    parser.add_argument("--sentences", type=int, default=30)
    parser.add_argument("--beam-size", type=int, default=DecodingConfig.beam_size)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--flashlight", action="store_true",
                        help="also time flashlight-text's C++ lexicon decoder with the same LM "
                             "(pip install flashlight-text)")
    parser.add_argument("--loop", choices=("compiled", "python", "both"), default="both",
                        help="the beam search's frame loop to time")
    args = parser.parse_args()
    compiled = ctc._native
    if compiled is None and args.loop != "python":
        print("model._ctcbeam is not built (pip install -e . with a C compiler): timing the Python loop only",
              file=sys.stderr)
    loops = [name for name in ("compiled", "python") if args.loop in (name, "both")
             and (name == "python" or compiled is not None)]
    torch.set_num_threads(1)
    vocab = Vocabulary()
    rng = random.Random(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    lm: NgramLM | None = load_lm(args.lm) if args.lm else load_default_lm()
    with gzip.open(args.text, "rt", encoding="utf-8") as f:
        lines = [normalize_text(next(f)) for _ in range(args.sentences * 3)]
    sentences = [s for s in lines if s and not vocab.unknown_chars(s)][: args.sentences]
    peaky = [peaky_log_probs(s, vocab, rng) for s in sentences]
    flat = [flat_log_probs(lp.shape[0], vocab, gen) for lp in peaky]

    cfg = DecodingConfig(beam_size=args.beam_size)
    t0 = time.perf_counter()
    lex = lexicon(lm.words(), vocab) if lm else None
    lex_seconds = time.perf_counter() - t0
    digit_refs = [rng.choice(DIGITS) for _ in sentences]  # one digit per utterance, as in FSDD
    command_refs = [rng.choice(COMMANDS[:-1]) for _ in sentences]
    digits = [peaky_log_probs(s, vocab, rng) for s in digit_refs]
    commands = [peaky_log_probs(s, vocab, rng) for s in command_refs]
    sets = {"text": (peaky, sentences), "flat": (flat, None), "digits": (digits, digit_refs),
            "commands": (commands, command_refs)}
    gc.collect()  # start every run from the same heap; the max column shows any collection pause
    cases: list[tuple[str, BeamSearch | None, str]] = [
        ("greedy (partials as today)", None, "text"),
        (f"beam {cfg.beam_size}", BeamSearch(vocab, cfg), "text"),
        (f"beam {cfg.beam_size}, flat input", BeamSearch(vocab, cfg), "flat"),
    ]
    if lm is not None:
        cases += [
            (f"beam {cfg.beam_size} + LM", BeamSearch(vocab, cfg, lm), "text"),
            (f"beam {cfg.beam_size} + LM, flat input", BeamSearch(vocab, cfg, lm), "flat"),
            (f"beam {cfg.beam_size} + LM + lexicon", BeamSearch(vocab, cfg, lm, lex), "text"),
        ]
    cases += [
        ("greedy, digits", None, "digits"),
        ("grammar: 10 digits", BeamSearch(vocab, cfg, None, Grammar(DIGITS, vocab)), "digits"),
        ("greedy, commands", None, "commands"),
        ("grammar: 12 commands + [unk]", BeamSearch(vocab, cfg, None, Grammar(COMMANDS, vocab)), "commands"),
        ("grammar: commands, flat input", BeamSearch(vocab, cfg, None, Grammar(COMMANDS, vocab)), "flat"),
    ]
    print(f"{len(sentences)} sentences, {sum(lp.shape[0] for lp in peaky) * 0.04:.0f} s of frames; "
          f"1 thread; chunk = {CHUNK_FRAMES} frames = 200 ms; WER on the synthetic, confusable input")
    if lm is not None:
        print(f"LM: order {lm.order}, {len(lm.vocab)} words; lexicon trie built in {lex_seconds:.2f} s")
    for loop in loops:
        ctc._native = compiled if loop == "compiled" else None
        print(f"\nframe loop: {loop}")
        print(f"{'decoder (streaming: advance + partial)':40s} {'CPU ms/chunk':>12s} {'p95':>7s} {'max':>7s} "
              f"{'x real time':>11s} {'WER':>6s}")
        for name, decoder, set_name in cases:
            inputs, refs = sets[set_name]
            times: list[float] = []
            hyps = []
            for lp in inputs:
                chunk_times, text = run_stream(decoder, lp, vocab)
                times.extend(chunk_times)
                hyps.append(text)
            times.sort()
            mean = statistics.fmean(times)
            print(f"{name:40s} {1000 * mean:12.2f} {1000 * times[int(0.95 * len(times))]:7.2f} "
                  f"{1000 * times[-1]:7.2f} {mean / 0.2:11.4f} {_wer(refs, hyps):>6s}")
    ctc._native = compiled
    if args.flashlight:
        if lm is None or lex is None:
            print("--flashlight needs an LM", file=sys.stderr)
            return 1
        _compare_flashlight(lm, lex, vocab, cfg, peaky, sentences)
    return 0


def _wer(refs: list[str] | None, hyps: list[str]) -> str:
    if refs is None:
        return "-"
    return f"{100 * error_rates([score_utterance(r, h) for r, h in zip(refs, hyps, strict=True)]).wer:.1f}"


def _compare_flashlight(lm: NgramLM, lex: Grammar, vocab: Vocabulary, cfg: DecodingConfig,
                        inputs: list[torch.Tensor], refs: list[str]) -> None:
    """The same search in flashlight-text's C++ lexicon decoder (what torchaudio wraps), same LM."""
    try:
        from flashlight.lib.text.decoder import (
            CriterionType,
            KenLM,
            LexiconDecoder,
            LexiconDecoderOptions,
            SmearingMode,
            Trie,
        )
        from flashlight.lib.text.dictionary import create_word_dict
    except ImportError:
        print("flashlight-text is not installed: pip install flashlight-text", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        arpa = Path(tmp) / "lm.arpa"
        write_arpa(lm.table(), arpa)
        words = list(lex.phrases)
        spellings = {w: [list(w) + [" "]] for w in words}
        spellings["<unk>"] = [["<unk>"]]  # flashlight's word dictionary needs the entry; never spelled
        word_dict = create_word_dict(spellings)
        klm = KenLM(str(arpa), word_dict)
    trie = Trie(len(vocab), vocab.space_id)
    start = klm.start(False)
    for w in words:
        _, score = klm.score(start, word_dict.get_index(w))
        trie.insert(vocab.encode(w) + [vocab.space_id], word_dict.get_index(w), score)
    trie.smear(SmearingMode.MAX)
    # KenLM scores are log10; ours are ln: the same weight means the same fusion.
    opts = LexiconDecoderOptions(beam_size=cfg.beam_size, beam_size_token=10, beam_threshold=25.0,
                                 lm_weight=cfg.lm_weight * math.log(10), word_score=cfg.word_bonus, unk_score=-math.inf,
                                 sil_score=0.0, log_add=False, criterion_type=CriterionType.CTC)
    decoder = LexiconDecoder(opts, trie, klm, vocab.space_id, 0, word_dict.get_index("<unk>"), [], False)
    mine = BeamSearch(vocab, cfg, lm, lex)
    print(f"{'whole utterance, same LM and lexicon':40s} {'CPU ms/200ms':>12s} {'WER':>6s}")
    for name, run in (("EdgeScribe beam + LM + lexicon", lambda lp: mine.decode(lp).text),
                      ("flashlight-text LexiconDecoder", lambda lp: _flashlight_text(decoder, word_dict, lp))):
        t0 = time.thread_time()
        hyps = [run(lp) for lp in inputs]
        cpu = time.thread_time() - t0
        chunks = sum(lp.shape[0] for lp in inputs) / CHUNK_FRAMES
        print(f"{name:40s} {1000 * cpu / chunks:12.2f} {_wer(refs, hyps):>6s}")


def _flashlight_text(decoder, word_dict, lp: torch.Tensor) -> str:
    em = lp.float().contiguous()
    best = decoder.decode(em.data_ptr(), em.shape[0], em.shape[1])[0]
    return " ".join(word_dict.get_entry(i) for i in best.words if i >= 0)


if __name__ == "__main__":
    sys.exit(main())

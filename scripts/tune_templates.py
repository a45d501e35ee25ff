"""Tune template mode's no-match rule and beam on a *development* set (never the benchmark's voices).

The development commands are sampled from the same grammars as scripts/bench_commands.py but with
another seed, and spoken by Kokoro voices that training uses (the benchmark's are held out of both
training and tuning). For each beam size and ``unk_penalty`` it decodes every utterance clean and at
12 dB, and reports, for each rejection threshold on the intent's ``margin`` (ln-score per character
below the greedy path), the acceptance of commands and the false accepts of everyday sentences:

    python scripts/tune_templates.py --n 40 --oog 20 --out /tmp/tune.md

The defaults in model/templates.py and model/recognize.py come from its table (README, "Sentence
templates").
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_commands as bench  # noqa: E402

from model.recognize import Recognizer  # noqa: E402
from model.templates import Templates  # noqa: E402
from model.tokens import Vocabulary  # noqa: E402
from model.training.synth_voices import ENGINES, HELD_OUT_VOICES  # noqa: E402

log = logging.getLogger("tune_templates")
THRESHOLDS = (None, -3.0, -2.5, -2.0, -1.5, -1.0, -0.75, -0.5)


def dev_voices() -> list:
    return [v for v in ENGINES["kokoro"][1]() if v.id not in HELD_OUT_VOICES]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=40, help="commands per grammar")
    p.add_argument("--oog", type=int, default=20, help="everyday sentences (no command)")
    p.add_argument("--seed", type=int, default=1, help="not the benchmark's seed (0)")
    p.add_argument("--beams", default="8,32")
    p.add_argument("--unk", default="-1,-2,-3,-4")
    p.add_argument("--snr", default="clean,12")
    p.add_argument("--cache", type=Path, default=bench.DEFAULT_CACHE)
    p.add_argument("--shared", type=Path, default=bench.DEFAULT_SHARED)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    grammars = [bench.home_assistant_grammar()] + [bench.file_grammar(f) for f in bench.GRAMMAR_FILES]
    by_name = {g.name: g for g in grammars}
    rng = random.Random(args.seed)
    commands = [c for g in grammars for c in bench.sample_commands(g, args.n, rng)]
    oog = bench.out_of_grammar(args.shared / "text" / "everyday.txt.gz", grammars, args.oog, rng, Vocabulary())
    utterances = bench.speak(commands + oog, dev_voices(), args.cache, rng)
    pool = bench.babble_pool(args.shared / "data", args.cache, args.seed)
    base = bench.load_recognizer()
    snrs = bench._snrs(args.snr)
    audio = [(u, bench.noisy(u, snr, args.seed, pool)[0]) for u in utterances for snr in snrs]

    lines = [f"# Template-mode tuning: {len(commands)} commands, {len(oog)} everyday sentences, dev voices "
             f"(Kokoro, trained on), seed {args.seed}, SNR {args.snr}", "",
             "| beam | unk penalty | margin threshold | commands accepted | wrong command | everyday given an intent |",
             "|---|---|---|---|---|---|"]
    for beam in (int(b) for b in args.beams.split(",")):
        rec = Recognizer(base.bundle, dataclasses.replace(base.decoding, beam_size=beam), base.lm)
        for unk in (float(u) for u in args.unk.split(",")):
            compiled = {g.name: Templates.from_yaml(g.yaml_text, rec.bundle.vocab, unk_penalty=unk, source=g.name,
                                                    beam_size=beam, min_margin=None) for g in grammars}
            results = []  # (is command, grammar, heard intent list)
            for u, wave in audio:
                targets = [by_name[u.command.grammar]] if u.command.intent else grammars
                for g in targets:
                    segments, _ = bench.stream_through(rec.stream(grammar=compiled[g.name]), wave)
                    results.append((u.command, g, [s.intent for s in segments if s.intent is not None]))
            for threshold in THRESHOLDS:
                ok = wrong = fa = n_cmd = n_oog = 0
                for command, g, intents in results:
                    kept = [i for i in intents if threshold is None or i.margin >= threshold]
                    first = kept[0] if kept else None
                    heard = bench.Heard("", first.name if first else None,
                                        {k: v.value for k, v in first.slots.items()} if first else {}, len(kept), 0.0)
                    if command.intent is None:
                        n_oog += 1
                        fa += first is not None
                    else:
                        n_cmd += 1
                        good = bench.accepted(command, heard, g)
                        ok += good
                        wrong += (first is not None) and not good
                shown = "none" if threshold is None else f"{threshold:g}"
                lines.append(f"| {beam} | {unk:g} | {shown} | {100 * ok / n_cmd:.1f}% | {100 * wrong / n_cmd:.1f}% | "
                             f"{100 * fa / max(1, n_oog):.1f}% |")
            log.info("beam %d unk %g done", beam, unk)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

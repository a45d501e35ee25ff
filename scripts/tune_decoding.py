#!/usr/bin/env python3
"""Choose the LM fusion settings of a model on a validation set: a grid of LM weight x word bonus.

Every setting decodes the same files through the same streaming recogniser as `edgescribe eval`
(beam search, the given LM), and the table shows WER and CER per setting, best WER first. Tune on
data of your own, never on a test set you report; then write the winner into the model with
`edgescribe export MODEL --lm-weight W --word-bonus B`.

    python scripts/tune_decoding.py --model run/best.esm data/valid.jsonl \
        --lm-weights 0.2,0.3,0.5 --word-bonuses 0,1,2 [--beam-size 8] [--lm default] [--json out.json]

Audio is decoded once and kept in memory, so each setting costs only recognition.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.audio import AudioDecodeError, load_audio  # noqa: E402
from model.checkpoint import load_model  # noqa: E402
from model.formats import full_text  # noqa: E402
from model.lm import load_lm_choice  # noqa: E402
from model.recognize import Recognizer  # noqa: E402
from model.tokens import normalize_text  # noqa: E402
from model.training.manifest import read_manifest  # noqa: E402
from model.training.metrics import error_rates, score_utterance  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifests", nargs="+", help="validation manifests (JSONL)")
    parser.add_argument("--model", required=True, help="the model file (.esm)")
    parser.add_argument("--lm", default="default", help="'default' (the shipped LM) or an LM file")
    parser.add_argument("--lm-weights", type=floats, default=[0.2, 0.3, 0.5, 0.8])
    parser.add_argument("--word-bonuses", type=floats, default=[0.0, 1.0, 2.0])
    parser.add_argument("--beam-size", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="first N utterances of each manifest")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write every setting's figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    bundle = load_model(args.model)
    lm = load_lm_choice(args.lm)
    clips: list[tuple[str, object]] = []
    for manifest in args.manifests:
        for n, utt in enumerate(read_manifest(manifest)):
            if args.limit is not None and n >= args.limit:
                break
            try:
                clips.append((normalize_text(utt.text), load_audio(utt.audio, bundle.features.sample_rate)))
            except AudioDecodeError as e:
                print(f"skipped {utt.audio}: {e}", file=sys.stderr)
    print(f"{len(clips)} utterances; beam {args.beam_size}", file=sys.stderr)

    rows = []
    for weight in args.lm_weights:
        for bonus in args.word_bonuses:
            decoding = dataclasses.replace(bundle.decoding, beam_size=args.beam_size, lm_weight=weight,
                                           word_bonus=bonus)
            rec = Recognizer(bundle, decoding, lm)
            scores = [score_utterance(ref, normalize_text(full_text(rec.transcribe(wave)))) for ref, wave in clips]
            rates = error_rates(scores)
            rows.append({"lm_weight": weight, "word_bonus": bonus, "wer": rates.wer, "cer": rates.cer})
            print(f"lm_weight {weight:g} word_bonus {bonus:g}: WER {rates.wer:.2%} CER {rates.cer:.2%}",
                  file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (r["wer"], r["cer"]))
    print("| LM weight | word bonus | WER | CER |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['lm_weight']:g} | {r['word_bonus']:g} | {r['wer']:.2%} | {r['cer']:.2%} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "manifests": args.manifests,
                                               "utterances": len(clips), "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

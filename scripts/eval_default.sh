#!/usr/bin/env bash
# The accuracy table of the README: one model (default: the embedded one), every decoding mode, the
# same files. Sets (first 500 of each): FSDD test, speechocean762 test, LibriSpeech dev-clean, and
# the held-out 20% of the Asterisk prompts (the other 80% are training data; prepare_default_data.py).
# Grammar rows use each set's own phrase list (FSDD: the ten digits; Asterisk: every prompt's text);
# the hotword row biases FSDD towards the ten digits without restricting it.
# Scored with the project's normaliser (model/tokens.py); scripts/compare_peers.py scores the peers'
# way (Whisper's normaliser), so the two tables differ slightly for the same hypotheses.
set -euo pipefail
MODEL=${MODEL:-}
DATA=${DATA:-/work/data}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
OUT=${OUT:-$DATA/eval-default}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
model=(); [ -n "$MODEL" ] && model=(--model "$MODEL")
fsdd="$SHARED/data/fsdd/test.jsonl"; so="$SHARED/data/speechocean762/test.jsonl"
ls="$SHARED/data/librispeech-dev-clean/dev.jsonl"; ast="$DATA/real/asterisk_heldout.jsonl"
python3 -c 'import json; print(json.dumps([str(d) for d in ["zero","one","two","three","four","five","six","seven","eight","nine"]]))' > "$OUT/digits.json"
# (Grammar phrases are at most 200 characters; the few longer prompts are left out of the list.)
python3 -c 'import json,sys; print(json.dumps(sorted({t for l in open(sys.argv[1]) if 0 < len(t := json.loads(l)["text"].strip()) <= 200})))' \
  "$SHARED/data/asterisk-prompts/all.jsonl" > "$OUT/asterisk_phrases.json"
run() {  # name, then eval arguments
  local name=$1; shift
  python3 -m edgescribe.cli eval "${model[@]}" --json "$@" > "$OUT/$name.json"
}
run greedy --beam-size 1 --lm none "$fsdd" "$so" "$ls" "$ast" --limit 500
run beam --beam-size 8 --lm none "$fsdd" "$so" "$ls" "$ast" --limit 500
run beam_lm --beam-size 8 --lm default "$fsdd" "$so" "$ls" "$ast" --limit 500
hotwords=(); for d in zero one two three four five six seven eight nine; do hotwords+=(--hotword "$d"); done
run beam_lm_hotwords --beam-size 8 --lm default "${hotwords[@]}" "$fsdd"
run grammar_fsdd --grammar "$OUT/digits.json" "$fsdd"
run grammar_asterisk --grammar "$OUT/asterisk_phrases.json" "$ast"
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
print("| decoding | set | utts | WER | CER | RTF (1 thread) |\n|---|---|---|---|---|---|")
for name, label in (("greedy", "greedy"), ("beam", "beam 8"), ("beam_lm", "beam 8 + LM"),
                    ("beam_lm_hotwords", "beam 8 + LM + the ten digits as hotwords"),
                    ("grammar_fsdd", "grammar (digits)"), ("grammar_asterisk", "grammar (prompts)")):
    for r in json.loads((out / f"{name}.json").read_text())["results"]:
        s = pathlib.Path(r["manifest"])
        print(f"| {label} | {s.parent.name}/{s.name} | {r['utterances']} | {r['wer']:.1%} | {r['cer']:.1%} | {r['rtf']:.3f} |")
PY

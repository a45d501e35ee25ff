#!/usr/bin/env bash
# The synthetic corpus for the default model (issue 5), exactly as it was made: about 30 hours of
# short sentences, digit strings, isolated digits, single words, letters and telephone/assistant
# commands, spoken by every installed English espeak-ng, flite and festival voice.
# Needs: apt-get install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox
# Resumable: rerun the same command to finish or grow the corpus; what is on disk is skipped.
# Usage: scripts/make_synth_corpus.sh [OUT_DIR] [TEXT_DIR]   (defaults: /work/data/synth /work/shared/text)
set -euo pipefail
out=${1:-/work/data/synth}
text=${2:-/work/shared/text}
cd "$(dirname "$0")/.."
mkdir -p "$out"
# nice: the machine is shared; 2 workers keep 2 cores busy when nobody else needs them.
exec nice -n 10 python3 scripts/synth_corpus.py --out "$out" \
  --text "$text/everyday.txt.gz:14000" \
  --text "$text/books.txt.gz:14000" \
  --valid-sentences 150 \
  --max-words 12 \
  --generate digits:6000 \
  --generate digit:5000 \
  --generate words:8000 \
  --generate letters:3000 \
  --generate commands:6000 \
  --workers 2 --seed 1 --flush-every 500 --no-progress

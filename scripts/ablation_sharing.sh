#!/usr/bin/env bash
# Ablation of weight sharing (issue 5): the same data, steps, seed and sizes, once with one GRU block
# reused for 4 depth steps and once with 4 distinct blocks; then every codec of each, on the same sets.
# Uses the phase-1 data and schedule of scripts/train_default.sh (DATA defaults to /work/data); with
# STEPS=1500 WARMUP=150 the shared run is phase 1 itself (RUN_SHARED=$DATA/runs/default1 reuses it).
set -euo pipefail
DATA=${DATA:-/work/data}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
STEPS=${STEPS:-1500}
WARMUP=${WARMUP:-150}
cd "$(dirname "$0")/.."
run_of() { if [ "$1" = shared ] && [ -n "${RUN_SHARED:-}" ]; then echo "$RUN_SHARED"; else echo "$DATA/runs/ablation-$1"; fi; }
for variant in shared no-shared; do
  [ "$(run_of "$variant")" = "$DATA/runs/ablation-$variant" ] || continue
  python3 -m edgescribe.cli train --train "$DATA/real/train.jsonl:2" --train "$DATA/synth/train_phase1.jsonl" \
    --valid "$DATA/real/valid.jsonl" --out "$DATA/runs/ablation-$variant" --max-steps "$STEPS" --warmup-steps "$WARMUP" \
    --valid-every 250 --checkpoint-every 50 --cache --threads 1 --workers 1 --no-progress --seed 0 \
    --hidden 256 --depth 4 --"$variant" --resume &
done
wait
for variant in shared no-shared; do
  run=$(run_of "$variant")
  for codec in int8 kmeans4; do
    python3 -m edgescribe.cli export "$run/model-fp32.esm" --codec "$codec" --out "$run/model-$codec.esm"
  done
  for codec in fp32 int8 kmeans4; do
    echo "== $variant $codec"
    python3 -m edgescribe.cli eval --model "$run/model-$codec.esm" --beam-size 1 --lm none --json \
      "$SHARED/data/fsdd/test.jsonl" "$DATA/real/valid.jsonl" > "$run/eval-$codec.json"
  done
done

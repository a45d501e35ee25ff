#!/usr/bin/env bash
# Architecture by measurement (issue 11): candidates that fit the 2 MB kmeans4 cap, trained on the same
# frozen data with the same seed and schedule for the same CPU time, then scored on validation.
#   DATA=/work/data   BUDGET_MINUTES=40 (CPU-minutes per candidate, one thread, bf16)
# Stages, each idempotent (rerun the script to resume a killed one):
#   1. freeze the data: copies of the manifests as they are now (runs/arch/data/*.jsonl)
#   2. measure each candidate's training speed (scripts/bench_train.py) and fix its step count so that
#      steps x seconds-per-step = the budget (runs/arch/steps.txt; never recomputed once written)
#   3. train each candidate (edgescribe train --resume), one after another on one thread
#   4. export kmeans4, score greedy and beam+LM on validation, and write runs/arch/table.md
set -euo pipefail
DATA=${DATA:-/work/data}
BUDGET_MINUTES=${BUDGET_MINUTES:-40}
BATCH_SECONDS=160
cd "$(dirname "$0")/.."
ARCH="$DATA/runs/arch"
mkdir -p "$ARCH/data"
CANDIDATES=(
  "gru256x4-shared:--hidden 256 --depth 4 --shared"
  "gru256x4-distinct:--hidden 256 --depth 4 --no-shared"
  "gru384x4-shared:--hidden 384 --depth 4 --shared"
  "gru256x8-shared:--hidden 256 --depth 8 --shared"
)

# 1. Frozen data: real speech (the newer sets at low weight) and the hibari corpus as it is now.
for m in real/train real/vctk real/grid real/wakewords real/valid real/valid_vctk synth-hibari/train; do
  [ -e "$ARCH/data/${m//\//-}.jsonl" ] || cp "$DATA/$m.jsonl" "$ARCH/data/${m//\//-}.jsonl"
done
train=(--train "$ARCH/data/real-train.jsonl:3" --train "$ARCH/data/real-vctk.jsonl:2"
       --train "$ARCH/data/real-grid.jsonl:0.3" --train "$ARCH/data/real-wakewords.jsonl:0.3"
       --train "$ARCH/data/synth-hibari-train.jsonl")
valid=(--valid "$ARCH/data/real-valid.jsonl" --valid "$ARCH/data/real-valid_vctk.jsonl")

# 2. Steps per candidate for an equal CPU-time budget.
if [ ! -e "$ARCH/steps.txt" ]; then
  : > "$ARCH/steps.tmp"
  for c in "${CANDIDATES[@]}"; do
    name=${c%%:*}; flags=${c#*:}
    # shellcheck disable=SC2086
    python3 scripts/bench_train.py "${train[@]}" --steps 20 --configs bf16:1x1 \
      --json "$ARCH/speed-$name.json" --extra $flags --cache
    speed=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['bf16:1x1'])" "$ARCH/speed-$name.json")
    steps=$(python3 -c "print(int($BUDGET_MINUTES * 60 * $speed / $BATCH_SECONDS))")
    echo "$name $steps $speed" >> "$ARCH/steps.tmp"
  done
  mv "$ARCH/steps.tmp" "$ARCH/steps.txt"
fi

# 3. Train, one candidate at a time (one thread each: leave a core for everything else).
for c in "${CANDIDATES[@]}"; do
  name=${c%%:*}; flags=${c#*:}
  steps=$(awk -v n="$name" '$1 == n {print $2}' "$ARCH/steps.txt")
  [ -e "$ARCH/$name/model.esm" ] && continue
  # shellcheck disable=SC2086
  python3 -m edgescribe.cli train "${train[@]}" "${valid[@]}" --out "$ARCH/$name" --max-steps "$steps" \
    --warmup-steps 200 --lr 1.5e-3 --precision bf16 --threads 1 --workers 1 --cache --no-progress \
    --valid-every 500 --checkpoint-every 100 --log-every 10 --seed 0 --codec kmeans4 $flags --resume
done

# 4. Score: greedy and beam 8 + the shipped LM on both validation sets; parameters, file size, RTF.
{
  echo "| candidate | parameters | kmeans4 file | steps | budget | valid WER / CER greedy | valid WER beam+LM | VCTK held-out WER greedy / beam+LM | RTF greedy (1 thread) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for c in "${CANDIDATES[@]}"; do
    name=${c%%:*}
    run="$ARCH/$name"
    [ -e "$run/model.esm" ] || continue
    python3 -m edgescribe.cli eval --model "$run/model.esm" --beam-size 1 --lm none --json \
      "$ARCH/data/real-valid.jsonl" "$ARCH/data/real-valid_vctk.jsonl" > "$run/eval-greedy.json"
    python3 -m edgescribe.cli eval --model "$run/model.esm" --beam-size 8 --json \
      "$ARCH/data/real-valid.jsonl" "$ARCH/data/real-valid_vctk.jsonl" > "$run/eval-beam.json"
    python3 - "$run" "$name" "$ARCH/steps.txt" "$BUDGET_MINUTES" <<'PY'
import json, sys
from pathlib import Path
from model.checkpoint import load_model
run, name, steps_file, budget = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
steps = {l.split()[0]: l.split()[1] for l in open(steps_file) if l.strip()}
g, b = (json.loads((run / f"eval-{k}.json").read_text())["results"] for k in ("greedy", "beam"))
params = sum(p.numel() for p in load_model(run / "model.esm").network.parameters())
size = (run / "model.esm").stat().st_size / 1e6
print(f"| {name} | {params / 1e6:.2f}M | {size:.2f} MB | {steps[name]} | {budget} min | {g[0]['wer']:.1%} / "
      f"{g[0]['cer']:.1%} | {b[0]['wer']:.1%} | {g[1]['wer']:.1%} / {b[1]['wer']:.1%} | {g[0]['rtf']:.4f} |")
PY
  done
} > "$ARCH/table.md"
cat "$ARCH/table.md"

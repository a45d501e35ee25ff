#!/usr/bin/env bash
# Which speaker and channel levers help (issue 11): from one common starting model, the same steps on
# the same frozen data and seed, once without any lever and once with each one alone, then all the
# levers together; each scored greedy on both validation sets. Equal steps, so equal compute.
#   DATA=/work/data   INIT=the common start (default: the reference architecture run's model-fp32.esm)
#   STEPS=600         steps per arm (bf16, 1 thread: ~10 minutes each here; fp32 without AVX512-BF16: ~20)
#   FROZEN=folder     the frozen manifests (default: the architecture runs'; a long-training leg's data/ works)
#   ONLY="none all"   run (and tabulate) only these arms
#   OUT=folder        where the arms go (default $DATA/runs/levers)
#   LR=1e-3           peak learning rate (5e-4 from a model that has trained long, as the long run's legs use)
#   ONLY="all all-seed1 no-vtlp no-eq no-babble no-lossy no-rooms"   leave one out instead
# Idempotent: a finished arm (its model.esm) is skipped; a killed one resumes.
set -euo pipefail
DATA=${DATA:-/work/data}
ARCH="$DATA/runs/arch"
FROZEN=${FROZEN:-$ARCH/data}
INIT=${INIT:-$ARCH/gru256x4-shared/model-fp32.esm}
STEPS=${STEPS:-600}
LR=${LR:-1e-3}
OUT=${OUT:-$DATA/runs/levers}
# bf16 only where the CPU has bf16 arithmetic (see train_long.sh).
if grep -qE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null; then PRECISION=${PRECISION:-bf16}; else PRECISION=${PRECISION:-fp32}; fi
cd "$(dirname "$0")/.."
[ -d "$DATA/rirs" ] || scripts/fetch_rirs.sh "$DATA/rirs"
train=(--train "$FROZEN/real-train.jsonl:3" --train "$FROZEN/real-vctk.jsonl:2"
       --train "$FROZEN/real-grid.jsonl:0.3" --train "$FROZEN/real-wakewords.jsonl:0.3"
       --train "$FROZEN/synth-hibari-train.jsonl")
ARMS=(
  "none:"
  "vtlp:--vtlp --vtlp-prob 0.5"
  "eq:--eq --eq-prob 0.5"
  "babble:--babble --babble-prob 0.2"
  "lossy:--lossy --lossy-prob 0.3"
  "rooms:--reverb --reverb-prob 0.3 --reverb-rirs $DATA/rirs"
  "all:--vtlp --eq --babble --lossy --reverb --reverb-rirs $DATA/rirs"
  # Leave one out of all (the levers as the long run uses them), and all again with another seed: the
  # spread between the two seeds is the noise a lever's difference has to clear.
  "all-seed1:--vtlp --eq --babble --lossy --reverb --reverb-rirs $DATA/rirs --seed 1"
  "no-vtlp:--eq --babble --lossy --reverb --reverb-rirs $DATA/rirs"
  "no-eq:--vtlp --babble --lossy --reverb --reverb-rirs $DATA/rirs"
  "no-babble:--vtlp --eq --lossy --reverb --reverb-rirs $DATA/rirs"
  "no-lossy:--vtlp --eq --babble --reverb --reverb-rirs $DATA/rirs"
  "no-rooms:--vtlp --eq --babble --lossy"
)
if [ -n "${ONLY:-}" ]; then
  kept=()
  for arm in "${ARMS[@]}"; do [[ " $ONLY " == *" ${arm%%:*} "* ]] && kept+=("$arm"); done
  ARMS=("${kept[@]}")
fi
for arm in "${ARMS[@]}"; do
  name=${arm%%:*}; flags=${arm#*:}
  [ -e "$OUT/$name/model.esm" ] && continue
  # shellcheck disable=SC2086
  python3 -m edgescribe.cli train --init "$INIT" "${train[@]}" --valid "$FROZEN/real-valid.jsonl" \
    --out "$OUT/$name" --max-steps "$STEPS" --warmup-steps 50 --lr "$LR" --precision "$PRECISION" --threads 1 \
    --workers 1 --cache --no-progress --valid-every "$STEPS" --checkpoint-every 100 --codec fp32 --seed 0 \
    $flags --resume
done
{
  echo "| lever | valid WER / CER greedy | VCTK held-out WER / CER greedy |"
  echo "|---|---|---|"
  for arm in "${ARMS[@]}"; do
    name=${arm%%:*}
    python3 -m edgescribe.cli eval --model "$OUT/$name/model.esm" --beam-size 1 --lm none --json \
      "$FROZEN/real-valid.jsonl" "$FROZEN/real-valid_vctk.jsonl" > "$OUT/$name/eval.json"
    python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(f'| {sys.argv[2]} | {r[0][\"wer\"]:.1%} / {r[0][\"cer\"]:.1%} | {r[1][\"wer\"]:.1%} / {r[1][\"cer\"]:.1%} |')" "$OUT/$name/eval.json" "$name"
  done
} > "$OUT/table.md"
cat "$OUT/table.md"

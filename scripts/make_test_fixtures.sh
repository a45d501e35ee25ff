#!/usr/bin/env bash
# Rebuilds tests/fixtures/: a few short espeak-ng utterances as 16 kHz mono FLAC, and their manifest.
# Needs: apt-get install espeak-ng sox
set -euo pipefail
cd "$(dirname "$0")/../tests/fixtures"
phrases=("hello world" "turn on the light" "call one two three" "stop the music" "yes" "good morning")
voices=("en-us" "en-gb" "en-us+f3" "en-gb-scotland" "en-us+m3" "en-029")
: > tiny.jsonl
for i in "${!phrases[@]}"; do
  name=$(printf 'utt%02d.flac' "$i")
  espeak-ng -v "${voices[$i]}" -s 150 -w /tmp/fixture.wav "${phrases[$i]}"
  sox /tmp/fixture.wav -r 16000 -c 1 -b 16 "$name"
  dur=$(soxi -D "$name")
  printf '{"audio": "%s", "text": "%s", "duration": %.3f}\n' "$name" "${phrases[$i]}" "$dur" >> tiny.jsonl
done

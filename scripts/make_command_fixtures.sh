#!/usr/bin/env bash
# Rebuilds tests/fixtures/commands/*.flac: spoken commands for the template-mode tests (espeak-ng and
# flite voices, 16 kHz mono FLAC), two with a pause inside the command, one that is no command.
# Needs: apt-get install espeak-ng flite sox
set -euo pipefail
cd "$(dirname "$0")/../tests/fixtures/commands"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say() {  # say VOICE TEXT OUT.wav: espeak-ng voices are "es:NAME", flite ones "fl:NAME"
  case "$1" in
    es:*) espeak-ng -v "${1#es:}" -s 150 -w "$3" "$2" ;;
    fl:*) flite -voice "${1#fl:}" -t "$2" -o "$3" ;;
  esac
}
clip() {  # clip NAME VOICE TEXT [PAUSE_SECONDS TEXT2]: one command, optionally with a pause inside it
  say "$2" "$3" "$tmp/a.wav"
  sox "$tmp/a.wav" -r 16000 -c 1 -b 16 "$tmp/a16.wav"
  if [ $# -ge 5 ]; then
    say "$2" "$5" "$tmp/b.wav"
    sox "$tmp/b.wav" -r 16000 -c 1 -b 16 "$tmp/b16.wav"
    sox -n -r 16000 -c 1 -b 16 "$tmp/gap.wav" trim 0 "$4"
    sox "$tmp/a16.wav" "$tmp/gap.wav" "$tmp/b16.wav" "$1.flac"
  else
    sox "$tmp/a16.wav" "$1.flac"
  fi
}
clip cmd00 es:en-us "set the kitchen lights to fifty percent"
clip cmd01 es:en-us "turn on the tv"
clip cmd02 fl:slt "switch on the kitchen light"
clip cmd03 es:en-us "set the living room lights" 1.2 "to twenty percent"
clip cmd04 es:en-us "a large latte" 0.8 "with oat milk"
clip cmd05 fl:slt "the weather is lovely today in paris"

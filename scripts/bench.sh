#!/usr/bin/env bash
# Runs every benchmark of the AWS path and prints the tables BENCHMARKS.md quotes.
# Needs the Python venv (scripts/setup-python.sh) for moto and the boto3 baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-python.sh
cargo build --release -p telepipe-workers --bins
cargo bench -p telepipe-workers --bench transcript
cargo bench -p telepipe-tests --bench lambda

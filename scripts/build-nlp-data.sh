#!/usr/bin/env bash
# Builds telepipe-nlp's data files (see scripts/build-nlp-data.py).
# Usage: scripts/build-nlp-data.sh [OUT_DIR]   (default: data/nlp/generated)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../data/nlp/generated}"
shift || true
exec python3 "$here/build-nlp-data.py" "$out" "$@"

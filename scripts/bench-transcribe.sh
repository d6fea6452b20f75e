#!/usr/bin/env bash
# Side-by-side benchmark of telepipe's offline transcriber and faster-whisper (issue 14):
# prepares everything, then runs scripts/bench-transcribe.py with the arguments given
# (e.g. --models tiny.en --runs 5). Not part of CI: it takes about 15 minutes on 2 cores.
#
# Prepares, each step idempotent:
#   .venv-bench      faster-whisper from PyPI, for this benchmark only
#   models/          tiny.en and base: the CTranslate2 weights faster-whisper reads and the
#                    ggml conversions telepipe reads (f16, q8_0, q5_0) of the same weights
#   data/bench/      the 7-minute two-voice synthetic visit (scripts/make-long-visit.py)
#   whisper-bench    release build
# Run it on an otherwise idle machine: the figures are wall times.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv-bench/bin/python ]] || ! .venv-bench/bin/python -c 'import faster_whisper' 2>/dev/null; then
  echo "bench-transcribe: creating .venv-bench with faster-whisper" >&2
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install --quiet --disable-pip-version-check "faster-whisper==1.2.1"
fi
for model in tiny.en base; do
  for ftype in f16 q8_0 q5_0; do
    scripts/fetch-whisper-model.sh "$model" models "$ftype" >/dev/null
  done
done
python3 scripts/make-long-visit.py data/bench >&2
cargo build --release --quiet -p telepipe-whisper --features whisper --bin whisper-bench
exec python3 scripts/bench-transcribe.py "$@"

#!/usr/bin/env bash
# Creates .venv with the Python tools the tests and benchmarks use: moto's server (the
# AWS emulator the adapter tests point the real SDK at) and boto3 (the cold-start
# baseline). Idempotent: a stamp records what was installed.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="moto[server]==5.2.5 boto3==1.44.5"
stamp=.venv/.telepipe-stamp
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$requirements" ] && [ -x .venv/bin/moto_server ]; then
  exit 0
fi
echo "setting up .venv: $requirements"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check $requirements
echo "$requirements" > "$stamp"

#!/usr/bin/env bash
# Installs the Debian packages that the Whisper transcriber's build and sample synthesis need:
#   cmake, clang, libclang-dev  - whisper-rs-sys compiles whisper.cpp and runs bindgen
#   libopenblas-dev             - whisper.cpp's encoder matrix products (the `whisper` feature)
#   espeak-ng, sox              - scripts/make-samples.sh synthesises and resamples speech
#   python3-venv                - scripts/fetch-whisper-model.sh keeps numpy in a venv
#
# Idempotent and CI-safe: installs only what is missing, runs `apt-get update` at most once
# and only when something must be installed, never prompts.
set -euo pipefail

# Debian package -> a command (or file) that proves it is present, so a machine that already has
# the tool from elsewhere is left alone.
declare -A probe=(
  [cmake]="cmd:cmake"
  [clang]="cmd:clang"
  [libclang-dev]="pkg:libclang-dev"
  [libopenblas-dev]="pkg:libopenblas-dev"
  [espeak-ng]="cmd:espeak-ng"
  [sox]="cmd:sox"
  [python3-venv]="pkg:python3-venv"
)

missing=()
for pkg in cmake clang libclang-dev libopenblas-dev espeak-ng sox python3-venv; do
  kind="${probe[$pkg]%%:*}"
  what="${probe[$pkg]#*:}"
  case "$kind" in
    cmd) command -v "$what" >/dev/null 2>&1 || missing+=("$pkg") ;;
    pkg) dpkg-query -W -f='${Status}' "$what" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg") ;;
  esac
done

# python3-venv only matters when the python3 on PATH cannot make a venv by itself
# (pyenv/python.org builds carry venv+ensurepip; Debian's python3 needs the package).
if [[ " ${missing[*]} " == *" python3-venv "* ]] && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing=("${missing[@]/python3-venv/}")
fi
filtered=()
for pkg in "${missing[@]}"; do [[ -n "$pkg" ]] && filtered+=("$pkg"); done
missing=("${filtered[@]+"${filtered[@]}"}")

if ((${#missing[@]} == 0)); then
  echo "setup-whisper: all needed packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

echo "setup-whisper: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup-whisper: done"

#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver from Debian's packages: the console's pages
# (`telepipe serve`, `telepipe report`) are tested in a real browser (scripts/test-console.sh).
# Idempotent: installs only what is missing, never prompts.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ((${#missing[@]} == 0)); then
  echo "setup-browser: chromium and chromium-driver present"
  exit 0
fi
SUDO=
[[ $(id -u) -ne 0 ]] && SUDO=sudo
echo "setup-browser: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-browser: done"

#!/usr/bin/env bash
# The console (`telepipe serve`) and the visit report (`telepipe report`) in a real browser:
# headless Chromium driven through chromium-driver, over a data directory `telepipe demo`
# fills. Run by scripts/test.sh after the Rust tests (which build target/debug/telepipe);
# screenshots and the report land in target/console-test/ (not in git).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-browser.sh >/dev/null
bin="${TELEPIPE_BIN:-target/debug/telepipe}"
[ -x "$bin" ] || cargo build --quiet -p telepipe-cli --bin telepipe
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin" demo --data-dir "$work/demo" >/dev/null
rm -rf target/console-test
python3 scripts/console_browser_test.py --telepipe "$bin" --data-dir "$work/demo" --artifacts target/console-test

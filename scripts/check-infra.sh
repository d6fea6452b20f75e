#!/usr/bin/env bash
# Offline checks of the deployable SAM template (infra/template.yaml):
#   1. cfn-lint  (CloudFormation + SAM schemas; informational findings count too)
#   2. checkov   (security policy; every skip is a Metadata entry on its resource, with a reason)
#   3. infra/check_template.py (skip reasons, plain-JSON event patterns, worker env vars)
# Any finding fails. Quiet on success: one summary line per tool.
#
# Tools are pinned and installed into .venv-infra/ at the repository root (git-ignored by
# /.venv*) on first use or when the pins change. Needs python3 (>= 3.9) with venv and
# access to PyPI the first time. Runs from anywhere; needs no AWS access or credentials.
set -euo pipefail

CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEMPLATE=infra/template.yaml
VENV="$ROOT/.venv-infra"
PINS="cfn-lint==$CFN_LINT_VERSION checkov==$CHECKOV_VERSION"
STAMP="$VENV/.telepipe-pins"

fail() { echo "check-infra: $*" >&2; exit 1; }

[ -f "$TEMPLATE" ] || fail "$TEMPLATE not found under $ROOT"
command -v python3 >/dev/null || fail "python3 is required"

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$PINS" ]; then
    log="$(mktemp)"
    if ! { python3 -m venv "$VENV" &&
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "cfn-lint==$CFN_LINT_VERSION" "checkov==$CHECKOV_VERSION"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        fail "could not install $PINS into $VENV (python3-venv missing? PyPI unreachable?)"
    fi
    rm -f "$log"
    echo "$PINS" >"$STAMP"
fi

status=0
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

# --- cfn-lint: prints nothing when clean; non-zero on any error, warning or informational
if "$VENV/bin/cfn-lint" --include-checks I --non-zero-exit-code informational -- "$TEMPLATE" >"$out" 2>&1; then
    echo "cfn-lint $CFN_LINT_VERSION: ok (0 findings)"
else
    cat "$out"
    echo "cfn-lint $CFN_LINT_VERSION: FAILED" >&2
    status=1
fi

# --- checkov: offline (no platform download); skips only via Metadata in the template
if "$VENV/bin/checkov" -f "$TEMPLATE" --framework cloudformation --skip-download \
    --compact --quiet >"$out" 2>&1; then
    counts="$(grep -Eo 'Passed checks: [0-9]+, Failed checks: [0-9]+, Skipped checks: [0-9]+' "$out" || true)"
    [ -n "$counts" ] || { cat "$out"; fail "checkov printed no result line"; }
    echo "checkov $CHECKOV_VERSION: ok ($counts)"
else
    cat "$out"
    echo "checkov $CHECKOV_VERSION: FAILED" >&2
    status=1
fi

# --- project rules
if ! "$VENV/bin/python" infra/check_template.py; then
    echo "template rules: FAILED" >&2
    status=1
fi

exit "$status"

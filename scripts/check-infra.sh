#!/usr/bin/env bash
# Offline checks of the deployable SAM template (infra/template.yaml), in both function
# layouts (parameter FunctionLayout: PerStage, the default, and Router):
#   1. cfn-lint  (CloudFormation + SAM schemas; informational findings count too), on the
#      template and on a copy whose defaults are FunctionLayout Router, SmsProvider twilio
#   2. checkov   (security policy; every skip is a Metadata entry on its resource, with a
#      reason) on the same two: checkov keeps only the resources whose Condition holds for
#      the parameter defaults, so the copy is how it sees the Router resources (and the
#      router-built sms-inbound with its public URL)
#   3. infra/check_template.py (skip reasons, plain-JSON event patterns, worker env vars,
#      audit and access, public endpoints, environment sizes), once per layout, and its
#      tests against fake Rust trees (infra/test_check_template.py)
# Any finding fails. Quiet on success: summary lines only.
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
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The Router layout as checkov must see it: the same template with other parameter defaults.
ROUTER_DEFAULTS="FunctionLayout=Router SmsProvider=twilio"
ROUTER="$work/template-router.yaml"
# shellcheck disable=SC2086 # one argument per NAME=VALUE
"$VENV/bin/python" - "$TEMPLATE" "$ROUTER" $ROUTER_DEFAULTS <<'PY' || fail "could not write the Router variant"
import re, sys
source, target, *pairs = sys.argv[1:]
text = open(source).read()
for name, value in (pair.split("=", 1) for pair in pairs):
    text, n = re.subn(r"(?m)^(  %s:\n(?:    .*\n)*?    Default: ).*$" % re.escape(name), r"\g<1>" + value, text, count=1)
    if n != 1:
        sys.exit(f"parameter {name} with a Default not found in {source}")
open(target, "w").write(text)
PY

# --- checkov: offline (no platform download); skips only via Metadata in the template.
# One process per template (several -f in one run merge their results per resource name),
# both started now and read after cfn-lint.
checkov_run() {
    "$VENV/bin/checkov" -f "$1" --framework cloudformation --skip-download --compact --quiet >"$2" 2>&1
    echo $? >"$2.rc"
}
checkov_run "$TEMPLATE" "$work/checkov-default" &
checkov_run "$ROUTER" "$work/checkov-router" &

# --- cfn-lint: prints nothing when clean; non-zero on any error, warning or informational
if "$VENV/bin/cfn-lint" --include-checks I --non-zero-exit-code informational -- "$TEMPLATE" "$ROUTER" \
    >"$work/cfn-lint" 2>&1; then
    echo "cfn-lint $CFN_LINT_VERSION: ok (0 findings; defaults and $ROUTER_DEFAULTS)"
else
    cat "$work/cfn-lint"
    echo "cfn-lint $CFN_LINT_VERSION: FAILED" >&2
    status=1
fi

wait
for variant in default router; do
    out="$work/checkov-$variant"
    label="defaults"
    [ "$variant" = router ] && label="$ROUTER_DEFAULTS"
    if [ "$(cat "$out.rc")" = 0 ]; then
        counts="$(grep -Eo 'Passed checks: [0-9]+, Failed checks: [0-9]+, Skipped checks: [0-9]+' "$out" || true)"
        [ -n "$counts" ] || { cat "$out"; fail "checkov printed no result line ($label)"; }
        echo "checkov $CHECKOV_VERSION ($label): ok ($counts)"
    else
        cat "$out"
        echo "checkov $CHECKOV_VERSION ($label): FAILED" >&2
        status=1
    fi
done

# --- project rules, for every FunctionLayout, and their tests on fake Rust trees
if ! "$VENV/bin/python" infra/check_template.py; then
    echo "template rules: FAILED" >&2
    status=1
fi
if "$VENV/bin/python" infra/test_check_template.py >"$work/tests" 2>&1; then
    echo "template rules tests: ok ($(grep -Eo 'Ran [0-9]+ tests?' "$work/tests"))"
else
    cat "$work/tests"
    echo "template rules tests: FAILED" >&2
    status=1
fi

exit "$status"

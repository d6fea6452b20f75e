# Sourced by the model fetchers (fetch-whisper-model.sh, fetch-voice-model.sh): makes sure the
# project venv $VENV (.venv-whisper) exists with numpy, so the system python is left alone, and
# sets PY to its python. Expects `say` and `die` from the caller.
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import numpy' >/dev/null 2>&1; then
  say "creating $VENV with numpy"
  command -v python3 >/dev/null || die "python3 not found (run scripts/setup-whisper.sh)"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "numpy>=1.24" || die "pip install numpy failed"
fi
PY="$VENV/bin/python"

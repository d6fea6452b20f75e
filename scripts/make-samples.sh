#!/usr/bin/env bash
# Synthesises the committed sample recordings in samples/ with espeak-ng and sox
# (scripts/setup-whisper.sh installs both):
#
#   visit-chest-pain.wav         mono, doctor and patient one after the other
#   visit-diabetes-followup.wav  mono, doctor and patient one after the other
#   visit-hypertension-stereo.wav two channels: doctor left, patient right, each silent while
#                                the other speaks (what a two-line telehealth recorder gives)
#   short-metformin.wav          one sentence, 2-4 s, for fast CI tests
#
# All 16 kHz, 16-bit PCM. Doctor: en-us male (+m3); patient: en-us female (+f3).
# Output is reproducible: espeak-ng is deterministic and sox runs without dither (-D) and with
# a fixed random seed (-R), so re-running the script rewrites identical files.
# The line texts are also in samples/README.md; keep the two in step.
#
#   scripts/make-samples.sh [OUT_DIR=samples]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/samples}"
DOCTOR_VOICE="en-us+m3"
PATIENT_VOICE="en-us+f3"
SPEED=160 # words per minute; espeak's default 175 costs Whisper words on this voice
GAP=0.35  # seconds of silence between turns

for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "make-samples: $tool not found; run scripts/setup-whisper.sh" >&2; exit 1; }
done
mkdir -p "$OUT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

SOX=(sox -D -R -V1)

# speak VOICE TEXT OUT: one turn as 16 kHz mono 16-bit.
speak() {
  espeak-ng -v "$1" -s "$SPEED" -w "$TMP/raw.wav" "$2"
  "${SOX[@]}" "$TMP/raw.wav" -r 16000 -b 16 -c 1 "$3"
}

"${SOX[@]}" -n -r 16000 -b 16 -c 1 "$TMP/gap1.wav" trim 0 "$GAP"
"${SOX[@]}" -n -r 16000 -b 16 -c 2 "$TMP/gap2.wav" trim 0 "$GAP"

# conversation OUT CHANNELS LINE...: LINE is "D:text" or "P:text". With CHANNELS=2 the doctor is
# on the left and the patient on the right; `remix 1 0` keeps the speech on one side and puts
# silence on the other.
conversation() {
  local out="$1" channels="$2" n=0 parts=()
  shift 2
  for line in "$@"; do
    local who="${line%%:*}" text="${line#*:}" voice remix
    if [[ "$who" == D ]]; then voice="$DOCTOR_VOICE"; remix="1 0"; else voice="$PATIENT_VOICE"; remix="0 1"; fi
    n=$((n + 1))
    speak "$voice" "$text" "$TMP/turn$n.wav"
    if [[ "$channels" == 2 ]]; then
      # shellcheck disable=SC2086
      "${SOX[@]}" "$TMP/turn$n.wav" "$TMP/turn${n}s.wav" remix $remix
      parts+=("$TMP/turn${n}s.wav" "$TMP/gap2.wav")
    else
      parts+=("$TMP/turn$n.wav" "$TMP/gap1.wav")
    fi
  done
  unset 'parts[${#parts[@]}-1]'
  "${SOX[@]}" "${parts[@]}" "$out"
  printf 'make-samples: %s %.1f s, %d bytes\n' "$out" "$(soxi -D "$out")" "$(stat -c %s "$out")"
}

conversation "$OUT/visit-chest-pain.wav" 1 \
  "D:What brings you in today?" \
  "P:I have chest pain and shortness of breath since yesterday." \
  "D:Any fever or cough?" \
  "P:No fever. My father had a heart attack." \
  "D:Take an aspirin now, and we will run some tests."

conversation "$OUT/visit-diabetes-followup.wav" 1 \
  "D:How is your diabetes?" \
  "P:Better. I take metformin 500 milligrams twice daily." \
  "D:And for your hypertension?" \
  "P:Lisinopril 10 milligrams daily." \
  "D:Good. Keep taking both."

conversation "$OUT/visit-hypertension-stereo.wav" 2 \
  "D:Your blood pressure is high today." \
  "P:I ran out of lisinopril last week." \
  "D:Any chest pain or shortness of breath?" \
  "P:No chest pain. No fever." \
  "D:Please restart lisinopril 10 milligrams daily."

speak "$PATIENT_VOICE" "I take metformin twice daily." "$OUT/short-metformin.wav"
printf 'make-samples: %s %.1f s, %d bytes\n' "$OUT/short-metformin.wav" "$(soxi -D "$OUT/short-metformin.wav")" "$(stat -c %s "$OUT/short-metformin.wav")"

#!/usr/bin/env bash
# Makes the committed compressed-audio fixtures from the committed WAVs in samples/ with ffmpeg
# (Debian's build: `apt-get install ffmpeg`; it has libmp3lame, libvorbis and the native aac
# encoder). Not needed at set-up or in CI: the outputs are committed.
#
#   samples/formats/               samples/short-metformin.wav in four containers/codecs, mono:
#     short-metformin.mp3          MP3 (libmp3lame), 16 kHz, 32 kbit/s CBR
#     short-metformin.m4a          AAC-LC (ffmpeg's native aac) in MP4/M4A, 16 kHz, 32 kbit/s
#     short-metformin.flac         FLAC, 16 kHz 16-bit (lossless)
#     short-metformin.ogg          Vorbis (libvorbis) in Ogg, 16 kHz, quality 2
#   samples/chime-capture/         an Amazon Chime SDK media capture pipeline's S3 layout:
#     audio/<start>.mp4            samples/visit-diabetes-followup.wav cut into consecutive
#                                  5-second chunks (the last shorter), AAC-LC in MP4, mono,
#                                  48 kHz, 48 kbit/s; <start> is the UTC time the chunk starts,
#                                  YYYY-MM-DD-HH-MM-SS-mmm, from 2026-12-01-15-00-00-000
#     meeting-events/<start>.txt   JSON lines: invented meeting events (joins, unmutes, leaves)
#     data-channel/<start>.txt     JSON lines: invented chat messages, Data base64-encoded
#   The JSON holds made-up UUIDs and demo user ids only: no names, numbers or clinical text.
#
# Chunks are cut by sample count (atrim start_sample/end_sample) from the source decoded once to
# 48 kHz PCM, so no audio is lost or repeated at chunk boundaries.
# Output is reproducible where ffmpeg allows: metadata is dropped and muxers/encoders run with
# bitexact flags (no version strings, creation times or random Ogg serials), so re-running the
# script with the same ffmpeg rewrites identical files.
#
#   scripts/make-format-samples.sh [SAMPLES_DIR=samples]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SAMPLES="${1:-$ROOT/samples}"
FORMATS="$SAMPLES/formats"
CHIME="$SAMPLES/chime-capture"
SHORT="$SAMPLES/short-metformin.wav"
VISIT="$SAMPLES/visit-diabetes-followup.wav"
CHUNK_SECONDS=5
CHIME_RATE=48000
START_UTC="2026-12-01 15:00:00" # capture start; first chunk's name
MAX_BYTES=$((1024 * 1024))      # formats/ + chime-capture/ together must stay under this

for tool in ffmpeg ffprobe base64 date du; do
  command -v "$tool" >/dev/null || { echo "make-format-samples: $tool not found; apt-get install ffmpeg" >&2; exit 1; }
done
for f in "$SHORT" "$VISIT"; do
  [[ -f "$f" ]] || { echo "make-format-samples: $f missing; run scripts/make-samples.sh" >&2; exit 1; }
done
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# Common flags: quiet, overwrite, no metadata, bitexact muxer and encoder.
FF=(ffmpeg -nostdin -hide_banner -v error -y)
EXACT=(-map_metadata -1 -fflags +bitexact -flags:a +bitexact)

# --- samples/formats ------------------------------------------------------------------------
rm -rf "$FORMATS"
mkdir -p "$FORMATS"
"${FF[@]}" -i "$SHORT" "${EXACT[@]}" -ac 1 -ar 16000 -c:a libmp3lame -b:a 32k \
  "$FORMATS/short-metformin.mp3"
"${FF[@]}" -i "$SHORT" "${EXACT[@]}" -ac 1 -ar 16000 -c:a aac -profile:a aac_low -b:a 32k \
  -movflags +faststart "$FORMATS/short-metformin.m4a"
"${FF[@]}" -i "$SHORT" "${EXACT[@]}" -ac 1 -ar 16000 -c:a flac -sample_fmt s16 \
  "$FORMATS/short-metformin.flac"
"${FF[@]}" -i "$SHORT" "${EXACT[@]}" -ac 1 -ar 16000 -c:a libvorbis -q:a 2 \
  "$FORMATS/short-metformin.ogg"

# --- samples/chime-capture ------------------------------------------------------------------
rm -rf "$CHIME"
mkdir -p "$CHIME/audio" "$CHIME/meeting-events" "$CHIME/data-channel"

# Decode and resample once; cut the PCM by sample index.
"${FF[@]}" -i "$VISIT" "${EXACT[@]}" -ac 1 -ar "$CHIME_RATE" -c:a pcm_s16le "$TMP/visit48k.wav"
total_samples="$(ffprobe -v error -select_streams a:0 -show_entries stream=duration_ts \
  -of default=nw=1:nk=1 "$TMP/visit48k.wav")"
chunk_samples=$((CHUNK_SECONDS * CHIME_RATE))
start_epoch="$(date -u -d "$START_UTC" +%s)"

# chime_name OFFSET_MS: the Chime artifact name for capture start + OFFSET_MS.
chime_name() {
  local ms=$(($1 % 1000)) s=$(($1 / 1000))
  printf '%s-%03d' "$(date -u -d "@$((start_epoch + s))" +%Y-%m-%d-%H-%M-%S)" "$ms"
}

n=0
for ((first = 0; first < total_samples; first += chunk_samples)); do
  last=$((first + chunk_samples < total_samples ? first + chunk_samples : total_samples))
  name="$(chime_name $((first * 1000 / CHIME_RATE)))"
  "${FF[@]}" -i "$TMP/visit48k.wav" "${EXACT[@]}" \
    -af "atrim=start_sample=$first:end_sample=$last,asetpts=PTS-STARTPTS" \
    -ac 1 -ar "$CHIME_RATE" -c:a aac -profile:a aac_low -b:a 48k "$CHIME/audio/$name.mp4"
  n=$((n + 1))
done

# Invented, PHI-free artifacts. The ids are fixed so re-runs match.
MEETING_ID="5f0c1d2e-8a4b-4c6d-9e1f-2a3b4c5d6e7f"
PIPELINE_ATTENDEE="0b9e8d7c-6f5a-4e3d-8c2b-1a0f9e8d7c6b"
CLINICIAN="a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
PATIENT="f6e5d4c3-b2a1-4f0e-9d8c-7b6a5f4e3d2c"
EXTERNAL_MEETING="demo-chime-visit"
capture="$(chime_name 0)"
iso() { # iso OFFSET_MS: ISO 8601 UTC with milliseconds
  printf '%s.%03dZ' "$(date -u -d "@$((start_epoch + $1 / 1000))" +%Y-%m-%dT%H:%M:%S)" $(($1 % 1000))
}
event() { # event OFFSET_MS TYPE [ATTENDEE EXTERNAL_USER]
  local params="\"MeetingId\":\"$MEETING_ID\",\"ExternalMeetingId\":\"$EXTERNAL_MEETING\""
  [[ $# -ge 4 ]] && params="$params,\"AttendeeId\":\"$3\",\"ExternalUserId\":\"$4\""
  printf '{"Timestamp":"%s","EventType":"%s","EventParameters":{%s}}\n' "$(iso "$1")" "$2" "$params"
}
message() { # message OFFSET_MS TOPIC TEXT ATTENDEE EXTERNAL_USER
  printf '{"Timestamp":"%s","Topic":"%s","Data":"%s","SenderAttendeeId":"%s","SenderExternalUserId":"%s"}\n' \
    "$(iso "$1")" "$2" "$(printf '%s' "$3" | base64 -w0)" "$4" "$5"
}

{
  event 0 CaptureStarted
  event 40 AttendeeJoined "$PIPELINE_ATTENDEE" "aws:MediaPipeline"
  event 120 AttendeeJoined "$CLINICIAN" clinician-demo
  event 310 AudioTrackUnmute "$CLINICIAN" clinician-demo
  event 850 AttendeeJoined "$PATIENT" patient-demo
  event 1020 AudioTrackUnmute "$PATIENT" patient-demo
  event 1400 ActiveSpeaker "$CLINICIAN" clinician-demo
  event 2900 ActiveSpeaker "$PATIENT" patient-demo
  event 7600 AudioTrackMute "$PATIENT" patient-demo
  event 7900 AudioTrackUnmute "$PATIENT" patient-demo
  event 13300 AttendeeLeft "$PATIENT" patient-demo
  event 13450 AttendeeLeft "$CLINICIAN" clinician-demo
  event 13520 CaptureEnded
} >"$CHIME/meeting-events/$capture.txt"

{
  message 900 chat "joining now" "$PATIENT" patient-demo
  message 1150 chat "hello, can you hear me?" "$CLINICIAN" clinician-demo
  message 1300 chat "yes, audio is clear" "$PATIENT" patient-demo
  message 13200 chat "thanks, bye" "$PATIENT" patient-demo
} >"$CHIME/data-channel/$capture.txt"

# --- summary --------------------------------------------------------------------------------
while IFS= read -r f; do
  if [[ "$f" == *.txt ]]; then
    info="$(wc -l <"$f") JSON lines"
  else
    info="$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,sample_rate,channels \
      -show_entries format=format_name,duration -of default=nw=1:nk=1 "$f" | paste -sd' ')"
  fi
  printf 'make-format-samples: %-60s %7d bytes  %s\n' "${f#"$ROOT"/}" "$(stat -c %s "$f")" "$info"
done < <(find "$FORMATS" "$CHIME" -type f | LC_ALL=C sort)
bytes="$(du -cb "$FORMATS" "$CHIME" | tail -1 | cut -f1)"
printf 'make-format-samples: %d audio chunks; %d bytes in total (limit %d)\n' "$n" "$bytes" "$MAX_BYTES"
if ((bytes >= MAX_BYTES)); then
  echo "make-format-samples: outputs exceed 1 MB" >&2
  exit 1
fi

#!/usr/bin/env python3
"""Writes diarization ground truth for the committed mono samples (issue 14).

samples/visit-chest-pain.wav and samples/visit-diabetes-followup.wav come from
scripts/make-samples.sh, which concatenates whole espeak-ng turns with 0.35 s of silence between
them and keeps no record of where each turn lies. To score a diarizer on them (scripts/der.py) we need
that record, so this script re-synthesises every turn exactly as make-samples.sh does (its voices,
speed, gap, sox flags and dialogue are read from make-samples.sh itself; the same commands run in
the same order), counts each turn's samples and writes samples/NAME.turns.json next to the WAV, in
the shape of scripts/make-long-visit.py's visit-long.json: {"audio", "sample_rate", "duration_ms",
..., "turns": [{"speaker", "start_ms", "end_ms", "text"}]}.

The reconstruction is checked before anything is written: the re-synthesised turns and gaps,
concatenated by sox as make-samples.sh does, must be byte-identical to the committed WAV, and the
turns and gaps joined here sample by sample must equal its samples (so the offsets are right). Any
difference (another espeak-ng or sox version, an edited script) is an error, not a guess.

The samples' turns are not trimmed, so a turn's span includes espeak's own silence (a few ms before
the speech, about 350 ms of digital zero after it). The truth marks speech only ("speech_trimmed":
true): each turn's start and end are moved in to where the audio rises above 0.1% of full scale, found
with the sox effect scripts/make-long-visit.py trims its turns with (`silence 1 0.01 0.1%` at both
ends), so the two kinds of ground truth follow one convention. The trimmed audio is checked to be a
contiguous slice of the turn. Pauses between a turn's sentences stay inside the turn. Times are
rounded to the nearest millisecond from sample counts.

    scripts/sample-turns.py           write samples/*.turns.json (unchanged files are not rewritten)
    scripts/sample-turns.py --check   exit 1 if a committed .turns.json is missing or out of date
"""

import json
import re
import shlex
import sys
import tempfile
from functools import partial
from pathlib import Path

import visit_synth
from visit_synth import RATE, TRIM, ms

ROOT = Path(__file__).resolve().parent.parent
MAKE_SAMPLES = ROOT / "scripts" / "make-samples.sh"
SAMPLES = ROOT / "samples"
SPEAKERS = {"D": "doctor", "P": "patient"}
PROG = "sample-turns"

fail = partial(visit_synth.fail, PROG)
run = partial(visit_synth.run, PROG)
read_wav = partial(visit_synth.read_wav, PROG)


def read_make_samples():
    """Settings and mono conversations of make-samples.sh: (config, [(wav name, [(who, text)])])."""
    text = MAKE_SAMPLES.read_text()

    def setting(name, pattern):
        m = re.search(rf"^{name}={pattern}", text, re.M)
        if not m:
            fail(f"cannot find {name}= in {MAKE_SAMPLES}")
        return m.group(1)

    config = {
        "doctor": setting("DOCTOR_VOICE", r'"([^"]+)"'),
        "patient": setting("PATIENT_VOICE", r'"([^"]+)"'),
        "speed": setting("SPEED", r"(\d+)"),
        "gap": setting("GAP", r"([0-9.]+)"),
        "sox": shlex.split(setting("SOX", r"\(([^)]*)\)")),
    }
    # Sanity: the commands below (and visit_synth.synthesise) copy speak() and the gap line; make
    # sure they still read so.
    for expected in ('espeak-ng -v "$1" -s "$SPEED" -w "$TMP/raw.wav" "$2"',
                     '"${SOX[@]}" "$TMP/raw.wav" -r 16000 -b 16 -c 1 "$3"',
                     '"${SOX[@]}" -n -r 16000 -b 16 -c 1 "$TMP/gap1.wav" trim 0 "$GAP"',
                     '"${SOX[@]}" "${parts[@]}" "$out"'):
        if expected not in text:
            fail(f"{MAKE_SAMPLES} no longer contains {expected!r}; update this script")

    conversations = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("conversation "):
            continue
        call = line
        while call.endswith("\\"):
            i += 1
            call = call[:-1] + lines[i]
        words = shlex.split(call)
        if len(words) < 3 or not words[1].startswith("$OUT/"):
            fail(f"cannot read {MAKE_SAMPLES}: {line}")
        if words[2] != "1":
            continue  # stereo: the channels already say who speaks
        turns = []
        for spoken in words[3:]:
            who, _, said = spoken.partition(":")
            if who not in SPEAKERS:
                fail(f"{MAKE_SAMPLES}: turn {spoken!r} is neither D: nor P:")
            turns.append((SPEAKERS[who], said))
        conversations.append((words[1][len("$OUT/"):], turns))
    if not conversations:
        fail(f"no mono conversation found in {MAKE_SAMPLES}")
    return config, conversations


def trimmed_span(config, turn_wav, frames, tmp):
    """(first, end) sample of the turn's speech: sox's silence trim, checked to be a slice."""
    lead_wav, both_wav = tmp / "lead.wav", tmp / "both.wav"
    run(config["sox"] + [str(turn_wav), str(lead_wav)] + TRIM[:4])
    run(config["sox"] + [str(turn_wav), str(both_wav)] + TRIM)
    lead, both = read_wav(lead_wav), read_wav(both_wav)
    first = (len(frames) - len(lead)) // 2
    end = first + len(both) // 2
    if not both or frames[2 * first:2 * end] != both or not lead.startswith(both):
        fail(f"{turn_wav.name}: sox's silence trim is not a slice of the turn")
    return first, end


def reconstruct(config, name, turns, tmp):
    """Re-synthesises one conversation as make-samples.sh does; returns the truth document."""
    sox = config["sox"]
    gap_wav = tmp / "gap1.wav"
    run(sox + ["-n", "-r", "16000", "-b", "16", "-c", "1", str(gap_wav), "trim", "0",
               config["gap"]])
    gap = read_wav(gap_wav)
    parts, pieces = [], []
    for n, (who, said) in enumerate(turns, 1):
        raw, turn_wav = tmp / "raw.wav", tmp / f"turn{n}.wav"
        visit_synth.synthesise(PROG, sox, config[who], config["speed"], said, raw, turn_wav)
        parts += [str(turn_wav), str(gap_wav)]
        pieces.append(read_wav(turn_wav))
    parts.pop()
    out = tmp / name
    run(sox + parts + [str(out)])

    committed = SAMPLES / name
    if out.read_bytes() != committed.read_bytes():
        fail(f"re-synthesised {name} differs from {committed} (another espeak-ng or sox, or "
             "make-samples.sh changed without re-running it?); no truth written")
    audio = read_wav(committed)
    if gap.join(pieces) != audio:
        fail(f"turns and gaps joined sample by sample differ from {committed}")

    doc_turns, pos = [], 0
    for n, ((who, said), frames) in enumerate(zip(turns, pieces), 1):
        first, end = trimmed_span(config, tmp / f"turn{n}.wav", frames, tmp)
        doc_turns.append({"speaker": who, "start_ms": ms(pos + first), "end_ms": ms(pos + end),
                          "text": said})
        pos += len(frames) // 2 + len(gap) // 2
    total = len(audio) // 2
    return {
        "audio": name,
        "sample_rate": RATE,
        "duration_ms": ms(total),
        "voices": {"doctor": config["doctor"], "patient": config["patient"]},
        "speed_wpm": int(config["speed"]),
        "gap_ms": ms(len(gap) // 2),
        "speech_trimmed": True,
        "trim": "sox " + " ".join(TRIM[:4]) + " at each end of each turn (audio above 0.1% of "
                "full scale), as scripts/make-long-visit.py",
        "made_by": "scripts/make-samples.sh; turns found by scripts/sample-turns.py",
        "turns": doc_turns,
    }


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] and not check:
        fail("usage: scripts/sample-turns.py [--check]")
    visit_synth.require_tools(PROG)
    config, conversations = read_make_samples()
    stale = 0
    with tempfile.TemporaryDirectory(prefix="sample-turns.") as tmp:
        for name, turns in conversations:
            doc = reconstruct(config, name, turns, Path(tmp))
            text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
            path = SAMPLES / (Path(name).stem + ".turns.json")
            current = path.read_text() if path.is_file() else None
            spans = ", ".join(f"{t['speaker'][0].upper()} {t['start_ms'] / 1000:.3f}-"
                              f"{t['end_ms'] / 1000:.3f}" for t in doc["turns"])
            if current == text:
                print(f"sample-turns: {path.relative_to(ROOT)} up to date ({spans})")
            elif check:
                print(f"sample-turns: {path.relative_to(ROOT)} missing or out of date",
                      file=sys.stderr)
                stale += 1
            else:
                path.write_text(text)
                print(f"sample-turns: wrote {path.relative_to(ROOT)} ({spans})")
    if stale:
        sys.exit(1)


if __name__ == "__main__":
    main()

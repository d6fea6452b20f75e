#!/usr/bin/env python3
"""Synthesises a long doctor-patient telehealth visit for benchmarking and diarization (issue 14).

Writes OUT_DIR/visit-long.wav (about seven minutes, mono, 16 kHz, 16-bit PCM) and
OUT_DIR/visit-long.json. The JSON is the ground truth: for each turn, who speaks (doctor or patient),
the exact text and where the turn's speech starts and ends in the WAV, in milliseconds. The samples in
samples/ are a few seconds long; this file is long enough to measure transcription speed and to score
diarization error rate. Turn gaps vary (0.3, 0.5, 0.8 s in turn) and there are a few longer pauses
(the doctor checking the chart) so a voice-activity detector has silence to skip.

Every line of the dialogue is invented. No real patient data is used.

Voices and tools match scripts/make-samples.sh: espeak-ng at 160 words per minute, doctor en-us+m3,
patient en-us+f3; sox without dither and with a fixed seed (-D -R), so the output is reproducible.
Each turn is trimmed of espeak's leading and trailing silence with sox's `silence` effect (threshold
0.1%), then the turns and gaps are concatenated here sample by sample. So start_ms/end_ms are computed
from sample counts, not measured, and mark where the trimmed speech begins and ends (end_ms excludes
the gap that follows). Pauses inside a turn, between its sentences, stay part of that turn.

If both outputs exist and the JSON's script_sha256 matches the current dialogue, voices, speed and
gaps, nothing is rebuilt. Otherwise the files are built in a temporary directory in OUT_DIR and moved
into place (the WAV first, then the JSON).

    scripts/make-long-visit.py [OUT_DIR=data/bench]
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import wave
from functools import partial
from pathlib import Path

import visit_synth
from visit_synth import RATE, TRIM, ms

ROOT = Path(__file__).resolve().parent.parent
PROG = "make-long-visit"
WAV_NAME = "visit-long.wav"
JSON_NAME = "visit-long.json"
VOICES = {"doctor": "en-us+m3", "patient": "en-us+f3"}
SPEED = 160  # words per minute, as in make-samples.sh
GAP_CYCLE = (0.3, 0.5, 0.8)  # seconds of silence after turn i is GAP_CYCLE[i % 3] ...
# ... unless a PAUSE entry follows the turn, in which case its length replaces the gap.
SOX = ["sox", "-D", "-R", "-V1"]

D, P, PAUSE = "doctor", "patient", "pause"

# (speaker, text) or (PAUSE, seconds). Doses: digits plus the word milligrams.
DIALOGUE = [
    (D, "Good morning. Can you hear me and see me clearly?"),
    (P, "Yes, I can hear you fine. The picture is a little dark, but I can see you."),
    (D, "Good. What brings you in today?"),
    (P, "I have been having chest pain on and off for about two weeks. It mostly comes when I walk "
        "up the stairs at work. It feels like a pressure in the middle of my chest, and it goes away "
        "after I sit down for a few minutes."),
    (D, "How long does each episode last?"),
    (P, "Usually five to ten minutes. Once it lasted almost twenty minutes, and that scared me."),
    (D, "Does the pain spread anywhere, like your arm, your jaw, or your back?"),
    (P, "Sometimes it goes into my left shoulder. Not my jaw."),
    (D, "Any shortness of breath with it?"),
    (P, "Yes. I get short of breath when the pain comes, and lately I get winded even walking to "
        "the mailbox. I have to stop and catch my breath, which never used to happen."),
    (D, "Okay. Have you had any headaches?"),
    (P, "Yes, I have a headache most mornings. It is a dull ache in the back of my head, and it "
        "usually gets better by lunch."),
    (D, "Any fever or chills?"),
    (P, "No fever. I checked my temperature a few times and it was normal."),
    (D, "What about a cough?"),
    (P, "I have a dry cough, mostly at night. It started maybe a month ago."),
    (D, "Any dizziness?"),
    (P, "Sometimes when I stand up too fast, the room spins for a second. It has happened three or "
        "four times this week."),
    (D, "All right. Let me pull up your chart for a moment."),
    (PAUSE, 2.5),
    (D, "I see you have type 2 diabetes, hypertension, and hyperlipidemia. Is that right?"),
    (P, "Yes. I was told I have diabetes about eight years ago, and the blood pressure came a few "
        "years after that. My cholesterol has been high for as long as I can remember."),
    (D, "Any other medical problems?"),
    (P, "I had asthma as a child. I mostly grew out of it, but I still keep an inhaler at home."),
    (D, "Tell me about your family. Any heart disease?"),
    (P, "My father had a heart attack when he was fifty eight. He survived, but he needed bypass "
        "surgery. My mother has diabetes too."),
    (D, "Do you smoke?"),
    (P, "I quit smoking six years ago. Before that I smoked about half a pack a day for twenty "
        "years."),
    (D, "Alcohol?"),
    (P, "A glass of wine on the weekend, maybe two."),
    (D, "Now let's go over your medications. What are you taking right now?"),
    (P, "I take metformin 500 milligrams twice daily, with breakfast and dinner. I also take "
        "lisinopril 10 milligrams daily in the morning."),
    (D, "Anything for cholesterol?"),
    (P, "Yes, atorvastatin 20 milligrams at night."),
    (D, "Are you taking aspirin?"),
    (P, "I take aspirin 81 milligrams every morning. My last doctor told me to start it."),
    (D, "And the inhaler?"),
    (P, "I have an albuterol inhaler. I use it maybe once a month, usually when it is cold "
        "outside."),
    (D, "Do you have any allergies to medications?"),
    (P, "Yes, I am allergic to penicillin. I got a rash all over my arms and chest when I took it "
        "as a teenager."),
    (D, "Thank you. Give me a second to add that to your chart."),
    (PAUSE, 2.0),
    (D, "Do you check your blood sugar at home?"),
    (P, "Yes, every morning before breakfast. It has been between 140 and 170 most days."),
    (D, "And your blood pressure?"),
    (P, "I have a cuff at home. Last night it was 152 over 94. This morning it was 148 over 90."),
    (D, "That is higher than we want. Your goal is below 130 over 80."),
    (P, "I know. I have been stressed at work, and I have not been walking like I used to because "
        "of the chest pain. I used to walk every evening after dinner."),
    (D, "That makes sense. Let me look at your last lab results."),
    (PAUSE, 3.0),
    (D, "Your last cholesterol test was six months ago, and your kidney function was normal then. "
        "We need to repeat them. I am concerned that your chest pain could be coming from your "
        "heart, especially with your diabetes and your family history. Let's order an "
        "electrocardiogram today, and I will send you for a stress test this week."),
    (P, "Do I need to go to the emergency room?"),
    (D, "Not right now. But if the pain comes at rest, lasts more than fifteen minutes, or you feel "
        "sweaty or sick to your stomach, call nine one one right away."),
    (P, "Okay, I understand. My husband can drive me if I need to go."),
    (D, "Good. Let's also order some blood work: a blood count, kidney function, a cholesterol "
        "panel, and your three month sugar average."),
    (P, "Do I need to fast for that?"),
    (D, "Yes. Please do not eat after midnight the night before. Water is fine. Now, about your "
        "medications. I'm going to increase your lisinopril to 20 milligrams daily."),
    (P, "Should I take two of my old pills until the new ones come?"),
    (D, "Yes. Please take two of the 10 milligram tablets each morning."),
    (P, "All right."),
    (D, "Please keep taking atorvastatin 20 milligrams at night, and keep the aspirin 81 milligrams "
        "every morning."),
    (P, "What about the metformin?"),
    (D, "Keep metformin 500 milligrams twice daily. Try setting an alarm on your phone for the "
        "evening dose."),
    (P, "That is a good idea. My daughter can help me set that up."),
    (D, "I'm also going to prescribe nitroglycerin tablets for the chest pain."),
    (P, "How do I use those?"),
    (D, "If the pain comes back, sit down, put one tablet under your tongue, and let it dissolve. "
        "If the pain is not better in five minutes, call nine one one. For the cough, keep using "
        "your albuterol inhaler, two puffs as needed."),
    (P, "Could the cough be from the lisinopril? I read something about that online, and my "
        "sister had the same problem."),
    (D, "Good question. Lisinopril can cause a dry cough. If it gets worse after we raise the dose, "
        "let me know and we can switch you to something else."),
    (P, "I will. And what about my headaches?"),
    (D, "The morning headaches may be from your blood pressure. Once it is under better control, "
        "they should improve. Please write down your blood pressure every morning and every "
        "evening."),
    (P, "I can do that. Should I bring the numbers to my next visit?"),
    (D, "Send them through the patient portal in one week, and we will see you back in two weeks."),
    (P, "Will you call me with the test results?"),
    (D, "Yes, as soon as the stress test and the blood work come back. Give me one "
        "moment to put these orders in."),
    (PAUSE, 2.5),
    (D, "Okay, the orders are in. The lab opens at seven in the morning."),
    (P, "Thank you. I was worried about this, so I am glad we are checking. I will go to the lab "
        "tomorrow morning before work."),
    (D, "You did the right thing by calling. Any other questions?"),
    (P, "No, I think that covers it. Thank you, doctor."),
    (D, "Take care, and call us if anything changes."),
]


fail = partial(visit_synth.fail, PROG)


def script_sha256():
    spec = {"dialogue": DIALOGUE, "voices": VOICES, "speed": SPEED, "gaps": GAP_CYCLE,
            "rate": RATE, "trim": TRIM}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def up_to_date(out, sha):
    wav, meta = out / WAV_NAME, out / JSON_NAME
    if not (wav.is_file() and meta.is_file()):
        return False
    try:
        return json.loads(meta.read_text()).get("script_sha256") == sha
    except (OSError, ValueError):
        return False


def speak(voice, text, tmp, n):
    """One turn as 16 kHz mono 16-bit samples (bytes), leading/trailing silence trimmed."""
    raw, out = tmp / f"raw{n}.wav", tmp / f"turn{n}.wav"
    visit_synth.synthesise(PROG, SOX, voice, SPEED, text, raw, out, TRIM, whole_command=False)
    frames = visit_synth.read_wav(PROG, out, f"unexpected format from sox for turn {n}")
    if not frames:
        fail(f"turn {n} is empty after trimming: {text!r}")
    return frames


def build(tmp):
    """Writes tmp/WAV_NAME and returns (turns, total_samples)."""
    turns, pos = [], 0
    with wave.open(str(tmp / WAV_NAME), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        spoken = 0
        for i, (who, what) in enumerate(DIALOGUE):
            if who == PAUSE:
                continue
            frames = speak(VOICES[who], what, tmp, i)
            n = len(frames) // 2
            turns.append({"speaker": who, "start_ms": ms(pos), "end_ms": ms(pos + n), "text": what})
            out.writeframes(frames)
            pos += n
            if i + 1 < len(DIALOGUE):
                nxt = DIALOGUE[i + 1]
                gap = nxt[1] if nxt[0] == PAUSE else GAP_CYCLE[spoken % len(GAP_CYCLE)]
                g = round(gap * RATE)
                out.writeframes(b"\0\0" * g)
                pos += g
            spoken += 1
    return turns, pos


def main():
    if len(sys.argv) > 2:
        fail("usage: scripts/make-long-visit.py [OUT_DIR=data/bench]")
    out = Path(sys.argv[1]) if len(sys.argv) == 2 else ROOT / "data" / "bench"
    visit_synth.require_tools(PROG)
    sha = script_sha256()
    if up_to_date(out, sha):
        print(f"make-long-visit: {out / WAV_NAME} up to date")
        return
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".make-long-visit.", dir=out))
    try:
        turns, total = build(tmp)
        meta = {
            "audio": WAV_NAME,
            "sample_rate": RATE,
            "duration_ms": ms(total),
            "voices": VOICES,
            "speed_wpm": SPEED,
            "script_sha256": sha,
            "turns": turns,
        }
        (tmp / JSON_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp / WAV_NAME, out / WAV_NAME)
        os.replace(tmp / JSON_NAME, out / JSON_NAME)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    words = sum(len(t["text"].split()) for t in turns)
    print(f"make-long-visit: {out / WAV_NAME} {total / RATE:.1f} s ({total / RATE / 60:.2f} min), "
          f"{len(turns)} turns, {words} words, built in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()

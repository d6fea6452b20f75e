"""Turn synthesis shared by scripts/make-long-visit.py and scripts/sample-turns.py (issue 14).

Owns what the two ground-truth writers must do alike: checking for espeak-ng and sox, running them
to make one turn as 16 kHz mono 16-bit PCM, reading such a WAV back, the sox silence trim that marks
where speech starts and ends, and rounding sample counts to milliseconds. The scripts import it from
their own folder (Python puts a script's folder first on sys.path).

Errors end the calling script with a message prefixed by its name (the prog argument), as each
script's own messages are.
"""

import shlex
import shutil
import subprocess
import sys
import wave

RATE = 16000
# Leading and trailing silence off a turn: audio below 0.1% of full scale at either end. Both kinds
# of ground truth mark speech with this one effect, so they follow one convention.
TRIM = ["silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse"]


def fail(prog, msg):
    print(f"{prog}: {msg}", file=sys.stderr)
    sys.exit(1)


def require_tools(prog):
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            fail(prog, f"{tool} not found; run scripts/setup-whisper.sh")


def run(prog, cmd, whole_command=True):
    """Runs cmd; on failure exits with its stderr, naming the command line (or only the program)."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        name = shlex.join(cmd) if whole_command else cmd[0]
        fail(prog, f"{name} failed ({r.returncode}): {r.stderr.strip()}")


def synthesise(prog, sox, voice, speed, text, raw, out, effects=(), whole_command=True):
    """espeak-ng speaks text into raw; sox converts it to out (16 kHz mono 16-bit), then effects.

    These are the commands of make-samples.sh's speak(), which scripts/sample-turns.py checks that
    script still runs; sox is the command with its flags (e.g. ["sox", "-D", "-R", "-V1"])."""
    run(prog, ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], whole_command)
    run(prog, sox + [str(raw), "-r", str(RATE), "-b", "16", "-c", "1", str(out), *effects],
        whole_command)


def read_wav(prog, path, bad_format=None):
    """The samples (bytes) of a 16 kHz mono 16-bit WAV; exits with bad_format if it is not one."""
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, RATE):
            fail(prog, bad_format or f"{path}: not 16 kHz mono 16-bit")
        return w.readframes(w.getnframes())


def ms(samples):
    return (samples * 1000 + RATE // 2) // RATE  # nearest millisecond

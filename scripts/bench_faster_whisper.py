#!/usr/bin/env python3
"""Times faster-whisper (CTranslate2) on one recording, the way whisper-bench times telepipe.

Run by scripts/bench-transcribe.py inside the bench-only venv (.venv-bench, faster-whisper from
PyPI); prints one JSON object like ``whisper-bench --json``: file, audio_s, wall_s (median of
--runs transcriptions, model load excluded), cpu_s (median), load_s and the transcript of the
last run. Peak memory is measured by the caller (the process's maximum RSS).

    bench_faster_whisper.py CT2_MODEL_DIR FILE.wav [--compute-type int8|float32|...]
                            [--threads N] [--runs N] [--prompt TEXT] [--word-timestamps]

Decoding is greedy (beam_size 1), with faster-whisper's other defaults (temperature fallback,
conditioning on previous text, no VAD filter, no word timestamps): its fastest honest setting.
--word-timestamps adds faster-whisper's word alignment (a DTW pass over the cross-attention,
the method telepipe uses), the output telepipe always produces.
"""

import argparse
import json
import statistics
import sys
import time
import wave


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("file")
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prompt", default=None)
    parser.add_argument("--word-timestamps", action="store_true")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    from faster_whisper import WhisperModel

    with wave.open(args.file, "rb") as w:
        audio_s = w.getnframes() / w.getframerate()

    started = time.perf_counter()
    model = WhisperModel(args.model_dir, device="cpu", compute_type=args.compute_type, cpu_threads=args.threads)
    load_s = time.perf_counter() - started

    walls, cpus, text = [], [], ""
    for _ in range(args.runs):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        segments, _info = model.transcribe(
            args.file, language="en", beam_size=1, initial_prompt=args.prompt, word_timestamps=args.word_timestamps
        )
        # Segments are a generator: the work happens while they are read.
        text = " ".join(segment.text.strip() for segment in segments)
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    print(
        json.dumps(
            {
                "file": args.file,
                "audio_s": audio_s,
                "wall_s": statistics.median(walls),
                "cpu_s": statistics.median(cpus),
                "load_s": load_s,
                "threads": args.threads,
                "compute_type": args.compute_type,
                "word_timestamps": args.word_timestamps,
                "transcript": text,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

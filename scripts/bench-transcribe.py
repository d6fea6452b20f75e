#!/usr/bin/env python3
"""Side-by-side benchmark of telepipe's offline transcriber and faster-whisper (issue 14).

One run measures, on the same recording, the same Whisper weights and the same number of
cores: wall time (median of --runs transcriptions, model load excluded), real-time factor
(audio seconds per wall second), peak RSS of the process, and the word error rate against
the script the recording was synthesised from. Every configuration runs in a process of its
own, so peak RSS is that engine's alone. Prints a Markdown table (BENCHMARKS.md keeps one) and
writes every figure and transcript to --out.

    scripts/bench-transcribe.sh [--models tiny.en,base] [--runs 3] [--engines ...]

(the shell wrapper prepares the venv, models, recording and binary, then calls this file).

Engines:
  telepipe      whisper.cpp on quantized ggml weights (--ftype), 1 thread x --cores workers
  telepipe-f16  the same on float16 weights (what telepipe ran before issue 14)
  fw-int8       faster-whisper, compute_type int8, cpu_threads --cores
  fw-float32    faster-whisper, compute_type float32, cpu_threads --cores
  fw-int8-words fw-int8 with word_timestamps=True: the word times telepipe always produces
                (its speaker mapping needs them), made by faster-whisper's own DTW pass

WER: words are lower-cased, punctuation dropped, hyphens split and "mg" read as "milligrams"
(Whisper writes doses as "500 mg", the script says "500 milligrams"); then the word-level edit
distance over the reference length. The same normaliser serves both engines.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("telepipe", "telepipe-f16", "fw-int8", "fw-int8-words", "fw-float32")


def words(text: str) -> list[str]:
    text = text.lower().replace("-", " ")
    text = re.sub(r"\bmg\b", "milligrams", text)
    text = re.sub(r"[^a-z0-9' ]", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        raise ValueError("empty reference")
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            best = min(row[j] + 1, row[j - 1] + 1, diagonal + (ref[i - 1] != hyp[j - 1]))
            diagonal, row[j] = row[j], best
    return row[len(hyp)] / len(ref)


def run_measured(command: list[str]) -> tuple[dict, float]:
    """Runs one configuration; returns its JSON line and the process's peak RSS in MiB."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = process.stdout.read()
    err = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err[-2000:]}")
    line = next(l for l in out.splitlines() if l.startswith("{"))
    # ru_maxrss is in KiB on Linux.
    return json.loads(line), usage.ru_maxrss / 1024


def command_for(engine: str, model: str, prompt: str | None, args, audio: Path) -> list[str]:
    models = ROOT / "models"
    if engine.startswith("telepipe"):
        suffix = "" if engine == "telepipe-f16" else f"-{args.ftype}"
        cmd = [str(ROOT / "target/release/whisper-bench"), "--model", str(models / f"ggml-{model}{suffix}.bin")]
        cmd += ["--threads", "1", "--jobs", str(args.cores), "--runs", str(args.runs), "--json"]
        if prompt is None:
            cmd.append("--no-prompt")
        return cmd + [str(audio)]
    compute = engine.removeprefix("fw-").removesuffix("-words")
    cmd = [str(ROOT / ".venv-bench/bin/python"), str(ROOT / "scripts/bench_faster_whisper.py")]
    cmd += [str(models / f"ct2-{model}"), str(audio), "--compute-type", compute]
    if engine.endswith("-words"):
        cmd.append("--word-timestamps")
    cmd += ["--threads", str(args.cores), "--runs", str(args.runs)]
    if prompt is not None:
        cmd += ["--prompt", prompt]
    return cmd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visit", type=Path, default=ROOT / "data/bench/visit-long.json")
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--prompts", default="with,without", help="with, without or both")
    parser.add_argument("--ftype", default="q8_0", help="telepipe's quantized weights")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "target/bench-transcribe.json")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3 (figures are medians)")
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}; choose from {ENGINES}")

    visit = json.loads(args.visit.read_text())
    audio = args.visit.parent / visit["audio"]
    reference = " ".join(turn["text"] for turn in visit["turns"])
    audio_s = visit["duration_ms"] / 1000

    # telepipe's vocabulary prompt, so faster-whisper is given the very same text.
    probe, _ = run_measured(command_for("telepipe", args.models.split(",")[0], "", args, ROOT / "samples/short-metformin.wav"))
    prompt_text = probe["prompt"]

    rows = []
    print(f"recording: {audio} ({audio_s / 60:.1f} min, {len(visit['turns'])} turns, {len(words(reference))} words)", file=sys.stderr)
    for model in args.models.split(","):
        for prompt_choice in args.prompts.split(","):
            prompt = prompt_text if prompt_choice == "with" else None
            for engine in engines:
                result, peak = run_measured(command_for(engine, model, prompt, args, audio))
                row = {
                    "model": model,
                    "prompt": prompt_choice,
                    "engine": engine,
                    "wall_s": result["wall_s"],
                    "rtf": audio_s / result["wall_s"],
                    "cpu_s": result["cpu_s"],
                    "peak_rss_mib": peak,
                    "wer": word_error_rate(reference, result["transcript"]),
                    "transcript": result["transcript"],
                }
                rows.append(row)
                print(f"  {model:8} {prompt_choice:7} {engine:14} {row['wall_s']:6.2f} s  WER {row['wer']:.3f}", file=sys.stderr)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"audio": str(audio), "audio_s": audio_s, "runs": args.runs, "cores": args.cores, "rows": rows}, indent=1))
    print(f"| model | prompt | engine | wall (median of {args.runs}) | real-time factor | peak RSS | WER | wall vs fw-int8 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        base = next(
            (r for r in rows if r["engine"] == "fw-int8" and r["model"] == row["model"] and r["prompt"] == row["prompt"]),
            None,
        )
        ratio = f"{row['wall_s'] / base['wall_s']:.2f}x" if base else "-"
        print(
            f"| {row['model']} | {row['prompt']} | {row['engine']} | {row['wall_s']:.2f} s | {row['rtf']:.1f} | "
            f"{row['peak_rss_mib']:.0f} MiB | {row['wer']:.3f} | {ratio} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

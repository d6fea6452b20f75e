//! Benchmarks the Whisper engine on sample recordings.
//!
//! ```text
//! cargo run -p telepipe-whisper --release --features whisper --bin whisper-bench -- \
//!     --model models/ggml-tiny.en.bin [--threads N] [--jobs N] [--runs N] [--no-prompt] \
//!     [--json] [--voice-model models/voice-encoder.safetensors] [--transcript-out FILE] \
//!     samples/*.wav
//! ```
//!
//! With `--voice-model` mono recordings are diarized too (the wall time includes it) and the
//! diarization alone is timed as well (`diarize_s`); `--transcript-out` writes the last
//! file's Transcribe JSON (for `scripts/der.py`).
//!
//! `--json` prints one JSON object per file instead of the table (what
//! `scripts/bench-transcribe.py` reads): file, audio_s, wall_s (median), cpu_s, peak_rss_mib,
//! load_s, the vocabulary prompt used and the transcript.
//!
//! Per sample: the median wall time of `--runs` transcriptions (default 3, at least 3), the
//! real-time factor (audio seconds per wall second: above 1 is faster than real time), and the
//! process's peak resident memory so far (VmHWM from /proc/self/status; it only grows, so read
//! the first sample's figure for one model's footprint). Also the median CPU time of a run
//! (user + system, /proc/self/stat): on a shared machine it shows what a run costs when wall
//! time is inflated by other work. Prints the transcript of the last run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use telepipe_events::transcribe::TranscribeOutput;
use telepipe_whisper::diarize::{VoiceEncoder, DEFAULT_MAX_SPEAKERS as MAX_SPEAKERS};
use telepipe_whisper::{decode_wav, WhisperEngine, WhisperOptions};

struct Args {
    model: PathBuf,
    threads: usize,
    jobs: Option<usize>,
    json: bool,
    voice_model: Option<PathBuf>,
    transcript_out: Option<PathBuf>,
    runs: usize,
    prompt: bool,
    files: Vec<PathBuf>,
}

const USAGE: &str =
    "usage: whisper-bench --model PATH [--threads N] [--jobs N] [--runs N>=3] [--no-prompt] [--json] \
     [--voice-model PATH] [--transcript-out FILE] FILE.wav...";

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut threads, mut runs, mut prompt, mut files) = (None, 1, 3, true, Vec::new());
    let (mut jobs, mut json) = (None, false);
    let (mut voice_model, mut transcript_out) = (None, None);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--model" => model = Some(PathBuf::from(value("--model")?)),
            "--threads" => {
                threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "--runs" => {
                runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--jobs" => {
                jobs = Some(
                    value("--jobs")?
                        .parse()
                        .map_err(|e| format!("--jobs: {e}"))?,
                )
            }
            "--json" => json = true,
            "--voice-model" => voice_model = Some(PathBuf::from(value("--voice-model")?)),
            "--transcript-out" => transcript_out = Some(PathBuf::from(value("--transcript-out")?)),
            "--no-prompt" => prompt = false,
            "-h" | "--help" => return Err(USAGE.into()),
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            file => files.push(PathBuf::from(file)),
        }
    }
    let model = model.ok_or("--model is required")?;
    if files.is_empty() {
        return Err("no WAV files given".into());
    }
    if runs < 3 {
        return Err("--runs must be at least 3 (the figure is a median)".into());
    }
    Ok(Args {
        model,
        threads,
        jobs,
        json,
        voice_model,
        transcript_out,
        runs,
        prompt,
        files,
    })
}

/// Peak resident set size of this process in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user + system) this process has used, from /proc/self/stat. Wall time on a shared
/// machine depends on what else runs; CPU time much less so.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th there.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, which is 100 on every mainstream architecture.
    Some(Duration::from_millis(ticks * 10))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn run(args: Args) -> Result<(), String> {
    let defaults = WhisperOptions::default();
    let options = WhisperOptions {
        threads: args.threads,
        jobs: args.jobs.unwrap_or(defaults.jobs),
        initial_prompt: if args.prompt {
            WhisperOptions::default().initial_prompt
        } else {
            None
        },
        ..WhisperOptions::default()
    };
    let load_start = Instant::now();
    let mut engine = WhisperEngine::load(&args.model, options).map_err(|e| e.to_string())?;
    // A second copy of the encoder times diarization on its own.
    let mut diarizer = None;
    if let Some(path) = &args.voice_model {
        let load = || VoiceEncoder::load(path).map_err(|e| e.to_string());
        engine = engine.with_voice_encoder(load()?, MAX_SPEAKERS);
        diarizer = Some(load()?);
    }
    let load_s = load_start.elapsed().as_secs_f64();
    let info = engine.model_info();
    let jobs = engine.options().jobs;
    if !args.json {
        println!(
        "model {} ({}, {} layers, {}), load {:.2} s, threads {} x jobs {jobs}, runs {}, peak RSS after load {:.0} MiB",
        args.model.display(),
        info.size_name(),
        info.n_audio_layer,
        if info.is_multilingual() { "multilingual" } else { "English-only" },
        load_s,
        args.threads,
        args.runs,
        peak_rss_mib().unwrap_or(f64::NAN),
    );
        println!(
            "{:<34} {:>8} {:>4} {:>10} {:>8} {:>8} {:>13}",
            "sample", "audio s", "ch", "median s", "RTF", "cpu s", "peak RSS MiB"
        );
    }
    for file in &args.files {
        let wav = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let audio = decode_wav(&wav).map_err(|e| format!("{}: {e}", file.display()))?;
        let job = file
            .file_stem()
            .map_or("sample".into(), |s| s.to_string_lossy().into_owned());
        let mut times = Vec::with_capacity(args.runs);
        let mut cpu_times = Vec::with_capacity(args.runs);
        let mut json = Vec::new();
        for _ in 0..args.runs {
            let (start, cpu_start) = (Instant::now(), cpu_time());
            json = engine
                .transcribe_wav(&wav, &job)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            times.push(start.elapsed());
            if let (Some(before), Some(after)) = (cpu_start, cpu_time()) {
                cpu_times.push(after.saturating_sub(before));
            }
        }
        let wall = median(times).as_secs_f64();
        let cpu = if cpu_times.is_empty() {
            f64::NAN
        } else {
            median(cpu_times).as_secs_f64()
        };
        let diarize_s = diarizer
            .as_ref()
            .filter(|_| audio.channels.len() == 1)
            .map(|d| {
                let mut times: Vec<Duration> = (0..args.runs)
                    .map(|_| {
                        let start = Instant::now();
                        d.diarize(&audio.channels[0], MAX_SPEAKERS);
                        start.elapsed()
                    })
                    .collect();
                times.sort();
                times[times.len() / 2].as_secs_f64()
            });
        if let Some(out) = &args.transcript_out {
            std::fs::write(out, &json).map_err(|e| format!("{}: {e}", out.display()))?;
        }
        let out: TranscribeOutput = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
        let transcript = &out.results.transcripts[0].transcript;
        if args.json {
            let line = serde_json::json!({
                "file": file.display().to_string(),
                "audio_s": audio.duration_secs(),
                "channels": audio.channels.len(),
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mib": peak_rss_mib(),
                "load_s": load_s,
                "threads": args.threads,
                "jobs": jobs,
                "prompt": engine.options().initial_prompt,
                "diarize_s": diarize_s,
                "speakers": out.results.speaker_labels.as_ref().and_then(|l| l.speakers),
                "transcript": transcript,
            });
            println!("{line}");
            continue;
        }
        println!(
            "{:<34} {:>8.1} {:>4} {:>10.2} {:>8.1} {:>8.2} {:>13.0}",
            file.file_name().map_or("?".into(), |n| n.to_string_lossy()),
            audio.duration_secs(),
            audio.channels.len(),
            wall,
            audio.duration_secs() / wall,
            cpu,
            peak_rss_mib().unwrap_or(f64::NAN),
        );
        println!("    {transcript}");
    }
    Ok(())
}

fn main() -> ExitCode {
    telepipe_whisper::blas::select_cpu_kernels();
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("whisper-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

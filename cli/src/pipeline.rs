//! `telepipe demo` and `telepipe run`: the local pipeline with its engines (Whisper and the
//! offline clinical NLP), its progress on stderr and its results on stdout. The pipeline
//! itself is `telepipe_local::runtime`; the demo's uploads and outcomes `telepipe_local::demo`.

use crate::args::resolve;
use crate::output::{or_dash, table, CommandResult, Outcome, Printer};
use crate::progress::Progress;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use telepipe_local::demo;
use telepipe_local::nlp::OfflineNlp;
use telepipe_local::runtime::{DirLock, LocalError, Pipeline, RECORDINGS_BUCKET};
use telepipe_local::sessions::{Outbox, OutboxCopy};
use telepipe_local::status::{self, RecordingStatus};
use telepipe_whisper::diarize::{VoiceEncoder, DEFAULT_MAX_SPEAKERS};
use telepipe_whisper::{WhisperEngine, WhisperOptions};

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// whisper.cpp model file (scripts/fetch-whisper-model.sh makes it; the q8_0 quantization
    /// is as accurate as float16 here and faster).
    #[arg(
        long,
        env = "TELEPIPE_WHISPER_MODEL",
        default_value = "models/ggml-tiny.en-q8_0.bin"
    )]
    model: PathBuf,
    /// Offline NLP data folder (scripts/build-nlp-data.sh makes it).
    #[arg(long, env = "TELEPIPE_NLP_DATA", default_value = "data/nlp/generated")]
    nlp_data: PathBuf,
    /// Whisper threads per worker (1: whisper.cpp's threads spin while they wait, so several
    /// one-thread workers beat one worker with several threads).
    #[arg(long, env = "TELEPIPE_WHISPER_THREADS", default_value_t = 1)]
    threads: usize,
    /// Chunks of one recording transcribed at once (default: the machine's cores, at most 4).
    #[arg(long, env = "TELEPIPE_WHISPER_JOBS")]
    jobs: Option<usize>,
    /// Speaker encoder for diarizing mono recordings (scripts/fetch-voice-model.sh makes it).
    #[arg(
        long,
        env = "TELEPIPE_VOICE_MODEL",
        default_value = "models/voice-encoder.safetensors"
    )]
    voice_model: PathBuf,
    /// Transcribe mono recordings as one speaker (no diarization, no voice model needed).
    #[arg(long, env = "TELEPIPE_NO_DIARIZATION")]
    no_diarization: bool,
    /// Most speakers diarization may find in one mono recording.
    #[arg(long, env = "TELEPIPE_MAX_SPEAKERS", default_value_t = DEFAULT_MAX_SPEAKERS)]
    max_speakers: usize,
    /// Vocabulary prompt for Whisper (drug and condition names).
    #[arg(long, env = "TELEPIPE_WHISPER_PROMPT")]
    prompt: Option<String>,
}

type LocalPipeline = Pipeline<OfflineNlp, WhisperEngine>;

fn open(data_dir: &Path, engines: &EngineArgs) -> Result<LocalPipeline, String> {
    let nlp_dir = resolve(&engines.nlp_data);
    let started = Instant::now();
    let nlp = telepipe_nlp::Engine::load(&nlp_dir)
        .map_err(|e| format!("{e}\n  (build it with scripts/build-nlp-data.sh)"))?;
    let nlp_ms = started.elapsed().as_millis();
    let model = resolve(&engines.model);
    let defaults = WhisperOptions::default();
    let mut options = WhisperOptions {
        threads: engines.threads.max(1),
        jobs: engines.jobs.unwrap_or(defaults.jobs).max(1),
        ..defaults
    };
    if let Some(prompt) = &engines.prompt {
        options.initial_prompt = Some(prompt.clone());
    }
    let started = Instant::now();
    let mut whisper = WhisperEngine::load(&model, options)
        .map_err(|e| format!("{e}\n  (fetch it with scripts/fetch-whisper-model.sh)"))?;
    if !engines.no_diarization {
        let voices = VoiceEncoder::load(&resolve(&engines.voice_model)).map_err(|e| {
            format!(
                "{e}\n  (or pass --no-diarization to transcribe mono recordings as one speaker)"
            )
        })?;
        whisper = whisper.with_voice_encoder(voices, engines.max_speakers.max(1));
    }
    eprintln!(
        "engines ready: clinical NLP from {} in {nlp_ms} ms, Whisper {} in {} ms",
        nlp_dir.display(),
        model.display(),
        started.elapsed().as_millis()
    );
    Pipeline::open(data_dir, OfflineNlp(Arc::new(nlp)), Arc::new(whisper))
        .map_err(|e: LocalError| e.to_string())
}

/// Reports each recording whose stage changed since `before` (as a note: a line of its own).
fn note_changes(
    progress: Option<&Progress>,
    started: Instant,
    before: &mut BTreeMap<(String, String), &'static str>,
    now: &[RecordingStatus],
) {
    for status in now {
        let key = (status.session_id.clone(), status.reference.clone());
        if before.get(&key) != Some(&status.stage) {
            let error = status
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            let line = format!(
                "[{:>6.1}s] {:<32} {}{error}",
                started.elapsed().as_secs_f64(),
                status.session_id,
                status.stage
            );
            match progress {
                Some(progress) => progress.note(&line),
                None => eprintln!("{line}"),
            }
            before.insert(key, status.stage);
        }
    }
}

/// What `telepipe demo` prints.
#[derive(Serialize)]
struct DemoReport {
    data_dir: PathBuf,
    recordings: Vec<demo::Outcome>,
    transcripts: PathBuf,
    /// Recordings that produced a results document, of `recordings`.
    produced: usize,
    wall_secs: f64,
}

fn secs(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |s| format!("{s:.1}s"))
}

fn demo_table(report: &DemoReport) -> String {
    let mut t = table([
        "session",
        "intake",
        "transcribe",
        "clinical",
        "words",
        "speakers",
        "cond",
        "meds",
        "ICD-10-CM",
        "drugs",
    ]);
    for r in &report.recordings {
        if r.results.is_none() {
            let problem = [r.stage.clone(), r.error.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            t.add_row(vec![
                r.session_id.clone(),
                secs(r.intake_secs),
                secs(r.transcribe_secs),
                secs(r.clinical_secs),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                problem,
            ]);
            continue;
        }
        t.add_row(vec![
            r.session_id.clone(),
            secs(r.intake_secs),
            secs(r.transcribe_secs),
            secs(r.clinical_secs),
            or_dash(r.words),
            r.speakers.join(", "),
            or_dash(r.conditions),
            or_dash(r.medications),
            r.icd10cm.join(" "),
            r.drugs.join(", "),
        ]);
    }
    let mut out = t.to_string();
    out.push('\n');
    for r in &report.recordings {
        if let Some(path) = &r.results {
            out.push_str(&format!("{}: {}\n", r.session_id, path.display()));
        }
    }
    out.push_str(&format!("transcripts: {}\n", report.transcripts.display()));
    out.push_str(&format!(
        "data directory: {} (inspect with: telepipe status --data-dir {})\n",
        report.data_dir.display(),
        report.data_dir.display()
    ));
    out.push_str(&format!(
        "{} of {} recordings produced a results document in {:.1}s",
        report.produced,
        report.recordings.len(),
        report.wall_secs
    ));
    out
}

/// `telepipe demo`: done when every recording produced its results document, partial when
/// some did, failed when none did.
pub async fn demo(
    data_dir: Option<PathBuf>,
    samples: &Path,
    engines: &EngineArgs,
    printer: Printer,
) -> CommandResult {
    let samples = resolve(samples);
    let recordings = demo::sample_recordings(&samples)?;
    let data_dir = data_dir.unwrap_or_else(|| {
        let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
        PathBuf::from(".data").join(format!("demo-{stamp}"))
    });
    demo::check_fresh(&data_dir)?;
    let pipeline = open(&data_dir, engines)?;
    let _lock = DirLock::acquire(&data_dir).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let uploads = demo::upload(&pipeline, &recordings, &samples)?;
    eprintln!(
        "uploaded {} recordings into {}",
        uploads.len(),
        data_dir.display()
    );
    let mut progress = Progress::new(uploads.len() as u64, "recordings", None);
    let mut seen = BTreeMap::new();
    pipeline
        .run_until_idle(|_| {
            if let Ok(now) = status::recordings(&pipeline.db, &pipeline.queues, None) {
                note_changes(Some(&progress), started, &mut seen, &now);
                let finished = uploads
                    .iter()
                    .filter(|u| {
                        now.iter().any(|s| {
                            s.session_id == u.session_id
                                && matches!(s.stage, "extracted" | "failed" | "rejected")
                        })
                    })
                    .count();
                progress.set(finished as u64, "");
            }
        })
        .await
        .map_err(|e| format!("pipeline stopped: {e}"))?;
    let wall = started.elapsed();
    let statuses =
        status::recordings(&pipeline.db, &pipeline.queues, None).map_err(|e| e.to_string())?;
    let recordings = demo::outcomes(&pipeline, &uploads, &statuses);
    let produced = recordings.iter().filter(|r| r.results.is_some()).count();
    progress.finish(&format!(
        "{produced} of {} recordings done in {:.1}s",
        recordings.len(),
        wall.as_secs_f64()
    ));
    let report = DemoReport {
        transcripts: pipeline.store.root().join("transcripts"),
        data_dir,
        recordings,
        produced,
        wall_secs: wall.as_secs_f64(),
    };
    printer.show(&report, demo_table)?;
    Ok(match produced {
        n if n == report.recordings.len() => Outcome::Done,
        0 => {
            eprintln!("demo: no recording produced its results document");
            Outcome::Failed
        }
        _ => {
            eprintln!("demo: not every recording produced its results document");
            Outcome::Partial
        }
    })
}

/// One outbox message as `run --output json` prints it (one object per line).
#[derive(Serialize)]
struct OutboxLine<'a> {
    outbox: &'a OutboxCopy,
}

fn outbox_text(copy: &OutboxCopy) -> String {
    let mut out = format!(
        "outbox: {} to {} ({})",
        copy.channel,
        copy.to,
        copy.path.display()
    );
    if let Some(subject) = &copy.subject {
        out.push_str(&format!("\n  subject: {subject}"));
    }
    for line in copy.body.lines() {
        out.push_str(&format!("\n  {line}"));
    }
    out
}

/// `telepipe run`: until Ctrl-C. Stdout gets what the outbox "sends" (the local stand-in
/// for a phone), one JSON object per line with `--output json`; progress goes to stderr.
pub async fn run(data_dir: &Path, engines: &EngineArgs, printer: Printer) -> CommandResult {
    let mut pipeline = open(data_dir, engines)?;
    pipeline.outbox = Outbox::new(pipeline.outbox.dir()).watched(move |copy| {
        printer.line(&OutboxLine { outbox: copy }, |line| {
            outbox_text(line.outbox)
        });
    });
    let _lock = DirLock::acquire(data_dir).map_err(|e| e.to_string())?;
    let (messages, jobs) = pipeline.recover().map_err(|e| e.to_string())?;
    if messages + jobs > 0 {
        eprintln!("redelivering {messages} message(s) and {jobs} transcription job(s) left in flight by the last run");
    }
    let inbox = pipeline
        .store
        .root()
        .join(RECORDINGS_BUCKET)
        .join(&pipeline.intake.recordings_prefix);
    eprintln!(
        "watching {}{{session_id}}/ (Ctrl-C to stop)",
        inbox.display()
    );
    let started = Instant::now();
    let mut seen = BTreeMap::new();
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut stop => {
                // Whatever this round had received stays in flight and is redelivered next start.
                eprintln!("stopping; unfinished work resumes on the next start");
                return Ok(Outcome::Done);
            }
            round = pipeline.round() => {
                let round = round.map_err(|e| format!("pipeline stopped: {e}"))?;
                if let Ok(now) = status::recordings(&pipeline.db, &pipeline.queues, None) {
                    note_changes(None, started, &mut seen, &now);
                }
                if !round.did_work() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

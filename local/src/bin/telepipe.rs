//! `telepipe`: the local pipeline on this machine, offline.
//!
//! - `telepipe demo`: runs the bundled sample recordings (and a Chime-style capture in
//!   5-second chunks) through every stage in a fresh data directory and prints what came out;
//! - `telepipe run --data-dir DIR`: the long-running runtime; drop a recording into
//!   `DIR/buckets/recordings/recordings/{session_id}/` to start the chain, or a Chime
//!   capture into `DIR/buckets/recordings/captures/{session_id}/` followed by its
//!   `Chime Media Pipeline State Change` through `telepipe events put`;
//! - `telepipe events put FILE`: publishes session events (EventBridge envelopes) on the
//!   local bus, to try the sessions → notifier flow by hand;
//! - `telepipe timers`: pending reminder and recording-check timers, `--fire` to deliver
//!   them now instead of at their time;
//! - `telepipe dlq list|peek|replay`: dead letters, locally or on SQS (`telepipe_ops::cli`);
//! - `telepipe forget` / `telepipe reprocess`: delete everything kept about a session
//!   (audited, resumable) or re-feed it from a stage (`telepipe_ops::session_cli`);
//! - `telepipe status`: where each recording is, queue depths and dead letters; with
//!   `--since`/`--state` (or `--aws`), per-recording timelines from the status store.

use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use telepipe_events::results::ResultsDocument;
use telepipe_local::db::Db;
use telepipe_local::nlp::OfflineNlp;
use telepipe_local::queue::Queues;
use telepipe_local::runtime::{
    open_bus, DirLock, LocalError, Pipeline, RECORDINGS_BUCKET, RESULTS_BUCKET,
};
use telepipe_local::sessions::{LocalScheduler, Outbox};
use telepipe_local::status::{self, format_time, RecordingStatus};
use telepipe_whisper::{WhisperEngine, WhisperOptions};

#[derive(Parser)]
#[command(
    name = "telepipe",
    version,
    about = "telepipe's pipeline on this machine: recordings → transcripts → clinical entities, offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bundled sample recordings through every stage in a fresh data directory and print the results.
    Demo {
        /// Where to put the run (must not exist yet or be empty). Default: .data/demo-<time>.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Folder of .wav recordings to use.
        #[arg(long, default_value = "samples")]
        samples: PathBuf,
        #[command(flatten)]
        engines: EngineArgs,
    },
    /// Run the local pipeline until Ctrl-C; recordings dropped into DIR/buckets/recordings/recordings/{session_id}/ are processed.
    /// Chime captures go to DIR/buckets/recordings/captures/{session_id}/audio/ (5-second chunks) and are
    /// joined into one recording when `telepipe events put` brings their chime:MediaPipelineDeleted.
    Run {
        /// The data directory (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        engines: EngineArgs,
    },
    /// Publish events on the local bus (what the platform or Chime would send): a JSON file
    /// holding one EventBridge envelope or an array of them. `telepipe run` then processes them.
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// List pending timers (reminders, recording checks); --fire delivers them now.
    Timers {
        /// The data directory of a `run`.
        #[arg(long)]
        data_dir: PathBuf,
        /// Only this session's timers.
        #[arg(long)]
        session: Option<String>,
        /// Deliver the listed timers now instead of at their time.
        #[arg(long)]
        fire: bool,
    },
    /// Every notification sent, skipped or failed for a session (ids, kinds, outcomes,
    /// provider message ids; no address, no text), locally or from the deployed log (--aws).
    Notifications {
        /// The session.
        #[arg(long)]
        session: String,
        /// The data directory of a `run` or `demo`.
        #[arg(long, required_unless_present = "aws")]
        data_dir: Option<PathBuf>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Read the deployed sessions table (TELEPIPE_SESSIONS_TABLE).
        #[arg(long)]
        aws: bool,
    },
    /// Two-way SMS on the local runtime: `telepipe sms receive --from N --body TEXT`.
    Sms {
        #[command(subcommand)]
        action: SmsAction,
    },
    /// Show where each recording is, since when, any error, and the queues.
    Status {
        /// The data directory of a `run` or `demo`.
        #[arg(long, required_unless_present = "aws")]
        data_dir: Option<PathBuf>,
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
        /// Timelines of recordings with a transition in this window (e.g. 30m, 1h, 2d).
        #[arg(long, value_parser = telepipe_local::timeline::parse_duration)]
        since: Option<i64>,
        /// Only recordings that entered this state (received, rejected, transcribing,
        /// transcribed, extracting, extracted, failed, stalled).
        #[arg(long, value_parser = telepipe_local::timeline::parse_state)]
        state: Option<telepipe_workers::status::State>,
        /// Read the deployed status table (TELEPIPE_STATUS_TABLE) instead of a data directory.
        #[arg(long)]
        aws: bool,
    },
    /// Dead letters: list the queues, peek at messages, replay them (--data-dir DIR or --aws).
    Dlq(telepipe_ops::cli::DlqArgs),
    /// Delete everything kept about a session (recordings, transcripts, results, status,
    /// state, schedules, queued messages), leaving an audit entry; resumable (--data-dir DIR or --aws).
    Forget(telepipe_ops::session_cli::ForgetArgs),
    /// Re-feed a session's recordings (--from transcription) or transcripts (--from clinical) to the pipeline.
    Reprocess(telepipe_ops::session_cli::ReprocessArgs),
    /// The audit trail: what was done with a session's recordings and by whom (append-only,
    /// kept through `forget`). `telepipe audit verify` checks the local hash chain.
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        #[command(subcommand)]
        check: Option<AuditCheck>,
        /// The data directory of a `run` or `demo`.
        #[arg(long, required_unless_present = "aws")]
        data_dir: Option<PathBuf>,
        /// Only this session (required with --aws).
        #[arg(long, required_if_eq("aws", "true"))]
        session: Option<String>,
        /// Only entries in this window (e.g. 30m, 1h, 7d).
        #[arg(long, value_parser = telepipe_local::timeline::parse_duration)]
        since: Option<i64>,
        /// One JSON array of entries instead of a table.
        #[arg(long)]
        json: bool,
        /// Read the deployed audit bucket (TELEPIPE_AUDIT_BUCKET) instead of a data directory.
        #[arg(long)]
        aws: bool,
    },
}

#[derive(Subcommand)]
enum AuditCheck {
    /// Check the local audit trail's hash chain; exits 1 when an entry was edited, removed
    /// or moved, and prints the head digest to keep elsewhere.
    Verify {
        /// The data directory of a `run` or `demo`.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum EventsAction {
    /// Publish the events in FILE; missing envelope fields (id, time, account, region) are filled in.
    Put {
        file: PathBuf,
        /// The data directory (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// The events published on the local bus, oldest first: detail-type, time, detail.
    List {
        /// The data directory of a `run` or `demo`.
        #[arg(long)]
        data_dir: PathBuf,
        /// Only events of this detail-type (e.g. "Notification Skipped").
        #[arg(long)]
        detail_type: Option<String>,
        /// Only events about this session.
        #[arg(long)]
        session: Option<String>,
        /// One JSON array of {"detail-type", "time", "detail"} instead of lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SmsAction {
    /// A patient's text, fed to the replies stage as the webhook or SNS would on AWS
    /// (keywords: STOP/START/HELP, CONFIRM or C, RESCHEDULE or R; Spanish too).
    Receive {
        /// The sender, E.164 (e.g. +15551230000).
        #[arg(long)]
        from: String,
        /// The message text; `-` reads it from standard input (keeps a real patient's text
        /// out of the process list and shell history).
        #[arg(long)]
        body: String,
        /// The data directory of a `run` (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Args)]
struct EngineArgs {
    /// whisper.cpp model file (scripts/fetch-whisper-model.sh makes it). Env: TELEPIPE_WHISPER_MODEL.
    #[arg(
        long,
        env = "TELEPIPE_WHISPER_MODEL",
        default_value = "models/ggml-tiny.en.bin"
    )]
    model: PathBuf,
    /// Offline NLP data folder (scripts/build-nlp-data.sh makes it). Env: TELEPIPE_NLP_DATA.
    #[arg(long, env = "TELEPIPE_NLP_DATA", default_value = "data/nlp/generated")]
    nlp_data: PathBuf,
    /// Whisper threads (1 is steadiest on a busy 2-core machine). Env: TELEPIPE_WHISPER_THREADS.
    #[arg(long, env = "TELEPIPE_WHISPER_THREADS", default_value_t = 1)]
    threads: usize,
    /// Vocabulary prompt for Whisper (drug and condition names). Env: TELEPIPE_WHISPER_PROMPT.
    #[arg(long, env = "TELEPIPE_WHISPER_PROMPT")]
    prompt: Option<String>,
}

/// A relative default that does not exist here is looked up in the checkout the binary was built from.
fn resolve(path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_path_buf();
    }
    let in_checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    if in_checkout.exists() {
        in_checkout
    } else {
        path.to_path_buf()
    }
}

type LocalPipeline = Pipeline<OfflineNlp, WhisperEngine>;

fn open(data_dir: &Path, engines: &EngineArgs) -> Result<LocalPipeline, String> {
    let nlp_dir = resolve(&engines.nlp_data);
    let started = Instant::now();
    let nlp = telepipe_nlp::Engine::load(&nlp_dir)
        .map_err(|e| format!("{e}\n  (build it with scripts/build-nlp-data.sh)"))?;
    let nlp_ms = started.elapsed().as_millis();
    let model = resolve(&engines.model);
    let mut options = WhisperOptions {
        threads: engines.threads.max(1),
        ..WhisperOptions::default()
    };
    if let Some(prompt) = &engines.prompt {
        options.initial_prompt = Some(prompt.clone());
    }
    let started = Instant::now();
    let whisper = WhisperEngine::load(&model, options)
        .map_err(|e| format!("{e}\n  (fetch it with scripts/fetch-whisper-model.sh)"))?;
    eprintln!(
        "engines ready: clinical NLP from {} in {nlp_ms} ms, Whisper {} in {} ms",
        nlp_dir.display(),
        model.display(),
        started.elapsed().as_millis()
    );
    Pipeline::open(data_dir, OfflineNlp(Arc::new(nlp)), Arc::new(whisper))
        .map_err(|e: LocalError| e.to_string())
}

fn session_id_for(file: &Path) -> String {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("sample");
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("demo-{clean}")
}

fn print_progress(
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
            eprintln!(
                "[{:>6.1}s] {:<32} {}{error}",
                started.elapsed().as_secs_f64(),
                status.session_id,
                status.stage
            );
            before.insert(key, status.stage);
        }
    }
}

/// The demo's Chime-style visit: a meeting captured in 5-second chunks.
const CHIME_DEMO_SESSION: &str = "demo-chime-visit";

/// Writes `samples/chime-capture/` (audio chunks, meeting events, data channel) where a
/// Chime media capture pipeline with the sink `captures/demo-chime-visit` would, then puts
/// the capture's `chime:MediaPipelineDeleted` on the bus, as Chime does when it stops.
/// Returns the number of audio chunks, or `None` when the samples hold no capture.
fn drop_chime_capture(pipeline: &LocalPipeline, samples: &Path) -> Result<Option<usize>, String> {
    let capture = samples.join("chime-capture");
    if !capture.join("audio").is_dir() {
        return Ok(None);
    }
    let folder = pipeline.capture.capture_folder(CHIME_DEMO_SESSION);
    let mut chunks = 0;
    for artifact in ["audio", "meeting-events", "data-channel"] {
        let Ok(entries) = std::fs::read_dir(capture.join(artifact)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("chunk");
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            pipeline
                .store
                .put_if_absent(
                    RECORDINGS_BUCKET,
                    &format!("{folder}{artifact}/{name}"),
                    &bytes,
                )
                .map_err(|e| format!("writing capture {}: {e}", file.display()))?;
            chunks += usize::from(artifact == "audio");
        }
    }
    let event = serde_json::json!({
        "version": "0", "id": "demo-capture-ended", "detail-type": "Chime Media Pipeline State Change",
        "source": "aws.chime", "account": "000000000000", "time": jiff::Timestamp::now().to_string(),
        "region": "local", "resources": [],
        "detail": {
            "version": "0", "eventType": "chime:MediaPipelineDeleted",
            "timestamp": jiff::Timestamp::now().as_millisecond(),
            "meetingId": "00000000-0000-4000-8000-00000000d3e0",
            "externalMeetingId": CHIME_DEMO_SESSION,
            "mediaPipelineId": "00000000-0000-4000-8000-0000000c4b7e",
            "mediaRegion": "local",
        },
    });
    pipeline
        .bus
        .put(&event)
        .map_err(|e| format!("putting the capture's end on the bus: {e}"))?;
    Ok(Some(chunks))
}

async fn demo(
    data_dir: Option<PathBuf>,
    samples: &Path,
    engines: &EngineArgs,
) -> Result<bool, String> {
    let samples = resolve(samples);
    let mut wavs: Vec<PathBuf> = std::fs::read_dir(&samples)
        .map_err(|e| format!("samples folder {}: {e}", samples.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")))
        .collect();
    wavs.sort();
    if wavs.is_empty() {
        return Err(format!(
            "samples folder {} holds no .wav recordings",
            samples.display()
        ));
    }
    let data_dir = data_dir.unwrap_or_else(|| {
        let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
        PathBuf::from(".data").join(format!("demo-{stamp}"))
    });
    if data_dir.exists()
        && std::fs::read_dir(&data_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(format!(
            "data directory {} is not empty: the demo needs a fresh one",
            data_dir.display()
        ));
    }
    let pipeline = open(&data_dir, engines)?;
    let _lock = DirLock::acquire(&data_dir).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut uploaded = Vec::new();
    for wav in &wavs {
        let session = session_id_for(wav);
        let name = wav
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("recording.wav");
        let key = format!("{}{session}/{name}", pipeline.intake.recordings_prefix);
        let bytes = std::fs::read(wav).map_err(|e| format!("{}: {e}", wav.display()))?;
        pipeline
            .store
            .put_if_absent(RECORDINGS_BUCKET, &key, &bytes)
            .map_err(|e| format!("uploading {}: {e}", wav.display()))?;
        uploaded.push((session, name.to_owned(), started.elapsed()));
    }
    if let Some(chunks) = drop_chime_capture(&pipeline, &samples)? {
        uploaded.push((
            CHIME_DEMO_SESSION.to_owned(),
            format!("Chime capture, {chunks} chunks"),
            started.elapsed(),
        ));
    }
    eprintln!(
        "uploaded {} recordings into {}",
        uploaded.len(),
        data_dir.display()
    );
    let mut seen = BTreeMap::new();
    pipeline
        .run_until_idle(|_| {
            if let Ok(now) = status::recordings(&pipeline.db, &pipeline.queues, None) {
                print_progress(started, &mut seen, &now);
            }
        })
        .await
        .map_err(|e| format!("pipeline stopped: {e}"))?;
    let wall = started.elapsed();
    let statuses =
        status::recordings(&pipeline.db, &pipeline.queues, None).map_err(|e| e.to_string())?;

    println!();
    println!(
        "{:<32} {:>7} {:>10} {:>8} {:>6} {:>5} {:>5}  {:<28} drugs",
        "session", "intake", "transcribe", "clinical", "words", "cond", "meds", "ICD-10-CM"
    );
    let mut all_ok = true;
    let mut outputs = Vec::new();
    for (session, name, _) in &uploaded {
        let Some(status) = statuses.iter().find(|s| &s.session_id == session) else {
            println!("{session:<32} no record of {name}");
            all_ok = false;
            continue;
        };
        let at = |stage: &str| {
            status
                .timeline
                .iter()
                .find(|(s, _)| *s == stage)
                .map(|(_, t)| *t)
        };
        let span = |from: Option<i64>, to: Option<i64>| match (from, to) {
            (Some(a), Some(b)) => format!("{:.1}s", (b - a) as f64 / 1000.0),
            _ => "-".into(),
        };
        let first = status.timeline.first().map(|(_, t)| *t);
        let Some(uri) = &status.results_uri else {
            println!(
                "{session:<32} {} {}",
                status.stage,
                status.error.as_deref().unwrap_or("")
            );
            all_ok = false;
            continue;
        };
        let key = uri
            .split_once(&format!("{RESULTS_BUCKET}/"))
            .map(|(_, k)| k)
            .unwrap_or_default();
        let path = pipeline.store.root().join(RESULTS_BUCKET).join(key);
        let doc: ResultsDocument = match std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(doc) => doc,
            None => {
                println!(
                    "{session:<32} results document {} unreadable",
                    path.display()
                );
                all_ok = false;
                continue;
            }
        };
        let count = |category: &str| {
            doc.entities
                .iter()
                .filter(|e| e.category == category)
                .count()
        };
        let mut codes: Vec<String> = Vec::new();
        for code in doc
            .icd10cm
            .iter()
            .filter_map(|e| e.concepts.first().map(|c| c.code.clone()))
        {
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        let mut drugs: Vec<String> = doc.rxnorm.iter().map(|e| e.text.to_lowercase()).collect();
        drugs.sort();
        drugs.dedup();
        println!(
            "{:<32} {:>7} {:>10} {:>8} {:>6} {:>5} {:>5}  {:<28} {}",
            session,
            span(first, at("transcribing")),
            span(at("transcribing"), at("transcribed")),
            span(at("transcribed"), at("extracted")),
            doc.text.split_whitespace().count(),
            count("MEDICAL_CONDITION"),
            count("MEDICATION"),
            codes.join(" "),
            drugs.join(", ")
        );
        outputs.push((session.clone(), path));
    }
    println!();
    for (session, path) in &outputs {
        println!("{session}: {}", path.display());
    }
    println!(
        "transcripts: {}",
        pipeline.store.root().join("transcripts").display()
    );
    println!(
        "data directory: {} (inspect with: telepipe status --data-dir {})",
        data_dir.display(),
        data_dir.display()
    );
    println!(
        "{} of {} recordings produced a results document in {:.1}s",
        outputs.len(),
        uploaded.len(),
        wall.as_secs_f64()
    );
    Ok(all_ok && outputs.len() == uploaded.len())
}

async fn run(data_dir: &Path, engines: &EngineArgs) -> Result<(), String> {
    let mut pipeline = open(data_dir, engines)?;
    // Here the outbox is the user's phone: print what would have been sent.
    pipeline.outbox = Outbox::new(pipeline.outbox.dir(), true);
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
                return Ok(());
            }
            round = pipeline.round() => {
                let round = round.map_err(|e| format!("pipeline stopped: {e}"))?;
                if let Ok(now) = status::recordings(&pipeline.db, &pipeline.queues, None) {
                    print_progress(started, &mut seen, &now);
                }
                if !round.did_work() {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// `telepipe events list`: what the local bus published.
fn list_events(
    data_dir: &Path,
    detail_type: Option<&str>,
    session: Option<&str>,
    json: bool,
) -> Result<(), String> {
    let (db, _) = open_data_db(data_dir)?;
    let rows: Vec<(String, i64, String)> = {
        let connection = db.lock();
        let mut statement = connection
            .prepare(
                "SELECT detail_type, time, envelope FROM events
                 WHERE (?1 IS NULL OR detail_type = ?1) AND (?2 IS NULL OR session_id = ?2) ORDER BY seq",
            )
            .map_err(|e| e.to_string())?;
        let rows = statement
            .query_map(rusqlite::params![detail_type, session], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| e.to_string())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        rows
    };
    let events: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(detail_type, time, envelope)| {
            let envelope: serde_json::Value = serde_json::from_str(&envelope).unwrap_or_default();
            let mut detail = envelope.get("detail").cloned().unwrap_or_default();
            // Platform events put on the bus carry contacts: shown masked, as `run` shows them.
            mask_addresses(&mut detail);
            serde_json::json!({
                "detail-type": detail_type,
                "time": envelope.get("time").cloned().unwrap_or_else(|| format_time(time).into()),
                "detail": detail,
            })
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&events).map_err(|e| e.to_string())?
        );
    } else {
        for event in &events {
            println!(
                "{}  {:<28} {}",
                event["time"].as_str().unwrap_or(""),
                event["detail-type"].as_str().unwrap_or(""),
                event["detail"]
            );
        }
        if events.is_empty() {
            println!("(no events)");
        }
    }
    Ok(())
}

/// `telepipe notifications`: the notification log of a session.
async fn show_notifications(
    session: &str,
    data_dir: Option<&Path>,
    json: bool,
    aws: bool,
) -> Result<(), String> {
    let entries = if aws {
        aws_notification_log(session).await?
    } else {
        let dir = data_dir.ok_or("--data-dir is required without --aws")?;
        let (db, path) = open_data_db(dir)?;
        telepipe_local::sessions::notification_log(&db, session)
            .map_err(|e| format!("{}: {e}", path.display()))?
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:<10} {:<9} {:<16} {:<18} intent",
        "time", "kind", "recipient", "channel", "outcome", "reason / provider"
    );
    for e in &entries {
        let detail = e
            .reason
            .clone()
            .or_else(|| e.provider.clone())
            .unwrap_or_default();
        println!(
            "{:<24} {:<20} {:<10} {:<9} {:<16} {:<18} {}",
            format_time(e.at_ms),
            e.kind.as_str(),
            e.recipient.as_str(),
            e.channel.as_str(),
            e.outcome,
            detail,
            e.intent_id
        );
    }
    if entries.is_empty() {
        println!("(no notifications recorded for {session})");
    }
    Ok(())
}

#[cfg(feature = "aws")]
async fn aws_notification_log(
    session: &str,
) -> Result<Vec<telepipe_workers::ports::NotificationLogEntry>, String> {
    let config = telepipe_ops::aws_session::AwsSessionConfig::from_env();
    let context = telepipe_workers::aws::AwsContext::load().await;
    telepipe_ops::aws_session::AwsSessionData::new(context, config)
        .notification_log(session)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "aws"))]
async fn aws_notification_log(
    _session: &str,
) -> Result<Vec<telepipe_workers::ports::NotificationLogEntry>, String> {
    Err("this telepipe was built without the `aws` feature".into())
}

/// Masks every `address` string in a JSON value (phone numbers, email addresses).
fn mask_addresses(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match item {
                    serde_json::Value::String(text) if key == "address" => {
                        *text = telepipe_local::sessions::mask_address(text);
                    }
                    other => mask_addresses(other),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_addresses),
        _ => {}
    }
}

/// `telepipe sms receive`: one inbound text on the local replies queue.
fn receive_sms(from: &str, body: &str, data_dir: &Path) -> Result<(), String> {
    if !telepipe_workers::notifier::address::is_e164(from) {
        return Err("--from must be an E.164 number like +15551230000".to_owned());
    }
    let body = if body == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("--body -: reading standard input: {e}"))?;
        text.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        body.to_owned()
    };
    let bus = open_bus(data_dir).map_err(|e| e.to_string())?;
    let sms = telepipe_events::replies::InboundSms {
        provider: telepipe_events::replies::InboundProvider::Local,
        message_id: format!("local-{}", telepipe_local::db::random_id()),
        from: from.to_owned(),
        to: String::new(),
        body,
        opt_out_type: None,
    };
    let text = serde_json::to_string(&sms).map_err(|e| e.to_string())?;
    bus.queues()
        .send(
            telepipe_local::runtime::REPLIES_QUEUE,
            &text,
            &std::collections::BTreeMap::new(),
            0,
        )
        .map_err(|e| e.to_string())?;
    println!(
        "queued a text from {} for the replies stage (telepipe run processes it)",
        telepipe_local::sessions::mask_address(from)
    );
    Ok(())
}

fn put_events(file: &Path, data_dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
    let envelopes = match value {
        serde_json::Value::Array(items) => items,
        single => vec![single],
    };
    let bus = open_bus(data_dir).map_err(|e| e.to_string())?;
    for (index, mut envelope) in envelopes.into_iter().enumerate() {
        let Some(fields) = envelope.as_object_mut() else {
            return Err(format!(
                "{} event {index}: not a JSON object",
                file.display()
            ));
        };
        for required in ["source", "detail-type", "detail"] {
            if !fields.contains_key(required) {
                return Err(format!(
                    "{} event {index}: no \"{required}\" (an EventBridge envelope needs source, detail-type and detail)",
                    file.display()
                ));
            }
        }
        let defaults = [
            ("version", serde_json::json!("0")),
            ("id", serde_json::json!(telepipe_local::db::random_id())),
            (
                "time",
                serde_json::json!(jiff::Timestamp::now().to_string()),
            ),
            ("account", serde_json::json!("000000000000")),
            ("region", serde_json::json!("local")),
            ("resources", serde_json::json!([])),
        ];
        for (name, value) in defaults {
            fields.entry(name).or_insert(value);
        }
        let rules = bus.put(&envelope).map_err(|e| e.to_string())?;
        println!(
            "{} {:?} → {}",
            envelope["detail-type"].as_str().unwrap_or("?"),
            envelope["detail"]["session_id"]
                .as_str()
                .or(envelope["detail"]["externalMeetingId"].as_str())
                .unwrap_or("-"),
            if rules.is_empty() {
                "no rule matched (check source and detail-type)".to_owned()
            } else {
                rules.join(", ")
            }
        );
    }
    Ok(())
}

fn timers(data_dir: &Path, session: Option<&str>, fire: bool) -> Result<(), String> {
    let bus = open_bus(data_dir).map_err(|e| e.to_string())?;
    let scheduler = LocalScheduler::new(bus.db().clone(), bus.queues().clone());
    let pending = scheduler.list(session).map_err(|e| e.to_string())?;
    println!(
        "{:<42} {:<26} {:<20} {:<14}",
        "timer", "fires at (UTC)", "zone", "delivers to"
    );
    for timer in &pending {
        println!(
            "{:<42} {:<26} {:<20} {:<14}",
            timer.name,
            timer.fire_at.to_string(),
            timer.time_zone,
            timer.target
        );
        if fire {
            scheduler.fire(timer).map_err(|e| e.to_string())?;
        }
    }
    if pending.is_empty() {
        println!("(no pending timers)");
    } else if fire {
        println!(
            "delivered {} timer(s) now; a running `telepipe run` processes them",
            pending.len()
        );
    }
    Ok(())
}

fn show_status(data_dir: &Path, session: Option<&str>) -> Result<(), String> {
    let db_path = data_dir.join("telepipe.db");
    if !db_path.exists() {
        return Err(format!(
            "{} holds no telepipe data (no telepipe.db)",
            data_dir.display()
        ));
    }
    let db = Db::open(&db_path).map_err(|e| format!("{}: {e}", db_path.display()))?;
    let queues = Queues::new(db.clone());
    let statuses = status::recordings(&db, &queues, session).map_err(|e| e.to_string())?;
    println!(
        "{:<32} {:<56} {:<12} {:<21} error / results",
        "session", "job / object", "stage", "since"
    );
    for s in &statuses {
        let detail = s
            .error
            .clone()
            .or_else(|| s.results_uri.clone())
            .unwrap_or_default();
        println!(
            "{:<32} {:<56} {:<12} {:<21} {}",
            s.session_id,
            s.reference,
            s.stage,
            format_time(s.since_ms),
            detail
        );
    }
    if statuses.is_empty() {
        println!(
            "(no recordings{})",
            session
                .map(|s| format!(" for session {s}"))
                .unwrap_or_default()
        );
    }
    println!();
    println!(
        "{:<18} {:>8} {:>10} {:>8} oldest",
        "queue", "visible", "in flight", "delayed"
    );
    for (name, depth) in status::queue_depths(&queues).map_err(|e| e.to_string())? {
        let oldest = depth
            .oldest_sent_ms
            .map(format_time)
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<18} {:>8} {:>10} {:>8} {}",
            name, depth.visible, depth.in_flight, depth.delayed, oldest
        );
    }
    Ok(())
}

/// The database of an existing data directory (never creates one: a mistyped path says so).
fn open_data_db(data_dir: &Path) -> Result<(Db, PathBuf), String> {
    let path = data_dir.join("telepipe.db");
    if !path.exists() {
        return Err(format!(
            "{} has no telepipe.db: not a data directory",
            data_dir.display()
        ));
    }
    let db = Db::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((db, path))
}

/// `telepipe audit`: a session's (or every) audit entry, oldest first.
async fn show_audit(
    data_dir: Option<&Path>,
    session: Option<&str>,
    since_ms: i64,
    json: bool,
    aws: bool,
) -> Result<(), String> {
    let entries = if aws {
        aws_audit(session.unwrap_or_default(), since_ms).await?
    } else {
        let dir = data_dir.ok_or("--data-dir is required without --aws")?;
        let (db, path) = open_data_db(dir)?;
        telepipe_local::audit::LocalAuditLog::new(db)
            .and_then(|log| log.entries(session, since_ms))
            .map_err(|e| format!("{}: {e}", path.display()))?
    };
    if json {
        let text = serde_json::to_string_pretty(&entries).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "{:<24} {:<24} {:<28} {:<24} refs",
        "time", "session", "action", "actor"
    );
    for entry in &entries {
        println!(
            "{:<24} {:<24} {:<28} {:<24} {}{}",
            format_time(entry.at_ms),
            entry.session_id.as_deref().unwrap_or("-"),
            entry.action.as_str(),
            entry.actor,
            entry.refs.join(" "),
            entry
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    if entries.is_empty() {
        println!("(no audit entries)");
    }
    Ok(())
}

#[cfg(feature = "aws")]
async fn aws_audit(
    session: &str,
    since_ms: i64,
) -> Result<Vec<telepipe_events::audit::AuditEntry>, String> {
    let config = telepipe_ops::aws_session::AwsSessionConfig::from_env();
    let context = telepipe_workers::aws::AwsContext::load().await;
    telepipe_ops::aws_session::AwsSessionData::new(context, config)
        .audit_trail(session, since_ms)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "aws"))]
async fn aws_audit(
    _session: &str,
    _since_ms: i64,
) -> Result<Vec<telepipe_events::audit::AuditEntry>, String> {
    Err("this telepipe was built without the `aws` feature".into())
}

/// `telepipe audit verify`: exit 0 when the chain is intact, 1 when it is broken.
fn verify_audit(data_dir: &Path) -> Result<ExitCode, String> {
    let (db, path) = open_data_db(data_dir)?;
    let report =
        telepipe_local::audit::verify(&db).map_err(|e| format!("{}: {e}", path.display()))?;
    match report.broken {
        None => {
            println!(
                "audit trail intact: {} entries, head {}",
                report.entries, report.head
            );
            Ok(ExitCode::SUCCESS)
        }
        Some((seq, why)) => {
            println!("audit trail BROKEN at entry {seq}: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `status --since/--state/--aws`: timelines from the status store.
async fn show_timelines(
    data_dir: Option<&Path>,
    aws: bool,
    selection: &telepipe_local::timeline::Selection,
) -> Result<(), String> {
    use telepipe_local::timeline::render;
    let now = telepipe_local::db::now_ms();
    let text = if aws {
        #[cfg(feature = "aws")]
        {
            use telepipe_workers::config::Env;
            let config = telepipe_workers::status::StatusConfig::from_env(&Env::process())
                .map_err(|e| e.to_string())?;
            let context = telepipe_workers::aws::AwsContext::load().await;
            let store =
                telepipe_workers::aws::DynamoStatus::new(&context, config.table, config.ttl_days);
            render(&store, selection, now).await?
        }
        #[cfg(not(feature = "aws"))]
        return Err("--aws needs telepipe built with --features aws".into());
    } else {
        let dir = data_dir.ok_or("--data-dir is required without --aws")?;
        let db_path = dir.join("telepipe.db");
        if !db_path.exists() {
            return Err(format!(
                "{} holds no telepipe data (no telepipe.db)",
                dir.display()
            ));
        }
        let db = Db::open(&db_path).map_err(|e| format!("{}: {e}", db_path.display()))?;
        render(
            &telepipe_local::status_store::SqliteStatus::new(db),
            selection,
            now,
        )
        .await?
    };
    print!("{text}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(telepipe_workers::telemetry::filter(&level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .compact()
        .init();
    // Metrics are off locally unless asked for (`TELEPIPE_METRICS=file:metrics.jsonl`).
    if std::env::var_os(telepipe_workers::metrics::SINK_VAR).is_some() {
        let env = telepipe_workers::config::Env::process();
        if let Err(err) = telepipe_workers::metrics::install_from_env(&env) {
            eprintln!("telepipe: {err}");
            return ExitCode::from(2);
        }
    }
    let result = match &cli.command {
        Command::Demo {
            data_dir,
            samples,
            engines,
        } => demo(data_dir.clone(), samples, engines).await.map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("demo: not every recording produced its results document");
                ExitCode::FAILURE
            }
        }),
        Command::Run { data_dir, engines } => {
            run(data_dir, engines).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Events {
            action: EventsAction::Put { file, data_dir },
        } => put_events(file, data_dir).map(|()| ExitCode::SUCCESS),
        Command::Events {
            action:
                EventsAction::List {
                    data_dir,
                    detail_type,
                    session,
                    json,
                },
        } => list_events(data_dir, detail_type.as_deref(), session.as_deref(), *json)
            .map(|()| ExitCode::SUCCESS),
        Command::Notifications {
            session,
            data_dir,
            json,
            aws,
        } => show_notifications(session, data_dir.as_deref(), *json, *aws)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Sms {
            action:
                SmsAction::Receive {
                    from,
                    body,
                    data_dir,
                },
        } => receive_sms(from, body, data_dir).map(|()| ExitCode::SUCCESS),
        Command::Timers {
            data_dir,
            session,
            fire,
        } => timers(data_dir, session.as_deref(), *fire).map(|()| ExitCode::SUCCESS),
        Command::Status {
            data_dir,
            session,
            since,
            state,
            aws,
        } => {
            let selection = telepipe_local::timeline::Selection {
                session: session.clone(),
                since_ms: since.map(|d| telepipe_local::db::now_ms() - d),
                state: *state,
            };
            match data_dir {
                Some(dir) if !aws && since.is_none() && state.is_none() => {
                    match show_status(dir, session.as_deref()) {
                        Ok(()) if session.is_some() => {
                            println!("\ntimeline (status store):");
                            show_timelines(Some(dir), false, &selection).await
                        }
                        other => other,
                    }
                }
                _ => show_timelines(data_dir.as_deref(), *aws, &selection).await,
            }
            .map(|()| ExitCode::SUCCESS)
        }
        Command::Dlq(args) => {
            telepipe_ops::cli::run(args, telepipe_local::dlq::LocalDlqAdmin::open).await
        }
        Command::Audit {
            check: Some(AuditCheck::Verify { data_dir }),
            ..
        } => verify_audit(data_dir),
        Command::Audit {
            check: None,
            data_dir,
            session,
            since,
            json,
            aws,
        } => {
            let since_ms = since.map_or(0, |d| telepipe_local::db::now_ms() - d);
            show_audit(
                data_dir.as_deref(),
                session.as_deref(),
                since_ms,
                *json,
                *aws,
            )
            .await
            .map(|()| ExitCode::SUCCESS)
        }
        Command::Forget(args) => {
            telepipe_ops::session_cli::run_forget(
                args,
                telepipe_local::forget::LocalSessionData::open,
            )
            .await
        }
        Command::Reprocess(args) => {
            telepipe_ops::session_cli::run_reprocess(
                args,
                telepipe_local::forget::LocalSessionData::open,
            )
            .await
        }
    };
    result.unwrap_or_else(|message| {
        eprintln!("telepipe: {message}");
        ExitCode::from(2)
    })
}

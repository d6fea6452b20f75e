//! What the command's tests share: fresh data directories, a small populated one made with
//! the library and stand-in engines (no Whisper: seconds, not minutes), running the
//! `telepipe` binary, and, for the real-engine tests, where the engines are and the rule
//! that CI must never skip them.
//!
//! Each test crate compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use jiff::{SignedDuration, Timestamp};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;
use telepipe_local::runtime::Pipeline;
use telepipe_local::transcriber::{SpeechToText, SttError};
use telepipe_workers::memory::KeywordNlp;
use telepipe_workers::synth::{transcript, SynthLabels};

/// An empty data directory of its own under the system temp dir.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "telepipe-cli-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A valid 16 kHz mono PCM WAV header and 200 bytes of silence.
pub fn wav() -> Vec<u8> {
    let mut bytes = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    bytes.extend([
        16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0,
    ]);
    bytes.extend(b"data\x00\x00\x00\x00");
    bytes.extend(vec![0u8; 200]);
    bytes
}

/// Drops a file where the runtime picks up uploads.
pub fn drop_recording(dir: &Path, session: &str, file: &str, bytes: &[u8]) {
    let folder = dir.join("buckets/recordings/recordings").join(session);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(file), bytes).unwrap();
}

/// A synthetic transcript for any audio, at once.
struct FakeStt;

impl SpeechToText for FakeStt {
    fn transcribe(&self, _media: &[u8], _format: &str, _job: &str) -> Result<Vec<u8>, SttError> {
        Ok(transcript(20, SynthLabels::Speakers).into_bytes())
    }
}

/// A `Session Scheduled` envelope for `session`, starting three days from now.
pub fn scheduled(session: &str) -> serde_json::Value {
    let start = Timestamp::now()
        .checked_add(SignedDuration::from_hours(72))
        .unwrap();
    serde_json::json!({"source": "telehealth.sessions", "detail-type": "Session Scheduled",
        "detail": {"session_id": session, "version": 1, "start": start.to_string(), "duration_minutes": 30,
            "patient_time_zone": "America/New_York", "locale": "en", "clinic_name": "Riverside Clinic",
            "patient": {"reference": "p-1", "channel": "sms", "address": "+12025550143"},
            "clinician": {"reference": "c-1", "channel": "email", "address": "dr.lee@example.org"}}})
}

/// A data directory with something in every store: sessions `visit-a` and `visit-b`
/// booked (timers), recorded, transcribed and extracted; `visit-a` reminded once
/// (outbox, notification log); a text upload parked on `intake-dlq`.
pub async fn populated(name: &str) -> PathBuf {
    let dir = fresh_dir(name);
    let mut pipeline = Pipeline::open(&dir, KeywordNlp::clinical(), Arc::new(FakeStt)).unwrap();
    pipeline.intake_consumer.retry_base = Duration::ZERO;
    pipeline.clinical_consumer.retry_base = Duration::ZERO;
    pipeline.sessions_consumer.retry_base = Duration::ZERO;
    pipeline.notifications_consumer.retry_base = Duration::ZERO;
    pipeline.worker.retry_base_ms = 0;
    for session in ["visit-a", "visit-b"] {
        let mut envelope = scheduled(session);
        telepipe_local::bus::complete_envelope(&mut envelope).unwrap();
        pipeline.bus.put(&envelope).unwrap();
        drop_recording(&dir, session, "visit.wav", &wav());
    }
    drop_recording(&dir, "k-bad", "notes.wav", b"typed notes, not audio");
    pipeline.run_until_idle(|_| {}).await.unwrap();
    let timers = pipeline.scheduler.list(Some("visit-a")).unwrap();
    pipeline.scheduler.fire(&timers[0]).unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();
    dir
}

/// The `telepipe` binary, without the caller's `TELEPIPE_DATA_DIR` (tests set it themselves).
pub fn telepipe() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_telepipe"));
    command.env_remove("TELEPIPE_DATA_DIR");
    command
}

/// Runs `telepipe ARGS`, stdin closed.
pub fn run(args: &[&str]) -> Output {
    telepipe()
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run telepipe")
}

/// (Whisper model, NLP data folder) from `TELEPIPE_WHISPER_MODEL` and `TELEPIPE_NLP_DATA`
/// (`scripts/test.sh` sets both). Outside CI, `None` with a note; in CI, a failure.
pub fn real_engines() -> Option<(String, String)> {
    match (
        std::env::var("TELEPIPE_WHISPER_MODEL"),
        std::env::var("TELEPIPE_NLP_DATA"),
    ) {
        (Ok(model), Ok(nlp)) => Some((model, nlp)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must provide TELEPIPE_WHISPER_MODEL and TELEPIPE_NLP_DATA")
        }
        _ => {
            eprintln!(
                "skipped: set TELEPIPE_WHISPER_MODEL and TELEPIPE_NLP_DATA (scripts/test.sh does)"
            );
            None
        }
    }
}

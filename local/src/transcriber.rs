//! Local transcription: `Transcriber` (the port `intake` calls) records a job; a worker
//! runs the speech-to-text engine on it and writes Transcribe Medical-format JSON into
//! the transcripts bucket, whose notification feeds `clinical` exactly as on AWS.
//!
//! The job table is its own queue: a job is inserted once (a second start of the same
//! name answers `AlreadyExists`, as Transcribe does), claimed under a lease, retried
//! with backoff on retryable failures, and marked FAILED with its reason otherwise.
//! Crash-safe: a claim whose lease ran out (or that a restart releases) runs again.

use crate::db::{now_ms, Db};
use crate::queue::LocalQueue;
use crate::store::FsStore;
use rusqlite::{params, OptionalExtension};
use std::sync::Arc;
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::ports::{
    DeadLetter, JobStart, JobState, MedicalJob, MedicalJobRequest, MessageQueue, ObjectStore,
    PutOptions, SpeakerMode, Transcriber,
};
use tracing::{info, warn};

/// Attempts per job before it is marked FAILED.
pub const MAX_ATTEMPTS: u32 = 3;
const LEASE_MS: i64 = 15 * 60 * 1000;

/// Why a transcription failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SttError {
    pub retryable: bool,
    /// Stable reason code (`unreadable_audio`, `unsupported_local_format`, ...).
    pub reason: String,
    /// Human-readable detail without PHI (file names are not passed in).
    pub detail: String,
}

/// A speech-to-text engine that writes Transcribe Medical-format JSON.
pub trait SpeechToText: Send + Sync + 'static {
    fn transcribe(
        &self,
        media: &[u8],
        media_format: &str,
        job_name: &str,
    ) -> Result<Vec<u8>, SttError>;
}

impl SpeechToText for telepipe_whisper::WhisperEngine {
    fn transcribe(
        &self,
        media: &[u8],
        media_format: &str,
        job_name: &str,
    ) -> Result<Vec<u8>, SttError> {
        use telepipe_whisper::WhisperError;
        self.transcribe_media(media, media_format, job_name)
            .map_err(|err| {
                let (retryable, reason) = match &err {
                    WhisperError::UnsupportedCodec(_) => (false, "unsupported_local_format"),
                    WhisperError::Wav(_)
                    | WhisperError::UnsupportedWav(_)
                    | WhisperError::Media(_) => (false, "unreadable_audio"),
                    WhisperError::Model { .. } | WhisperError::FeatureDisabled => {
                        (false, "transcriber_unavailable")
                    }
                    WhisperError::Inference(_) | WhisperError::Json(_) => {
                        (true, "inference_failed")
                    }
                };
                SttError {
                    retryable,
                    reason: reason.into(),
                    detail: err.to_string(),
                }
            })
    }
}

/// The `Transcriber` port: records jobs for the worker.
#[derive(Clone)]
pub struct LocalTranscriber {
    db: Db,
}

impl LocalTranscriber {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

fn request_json(request: &MedicalJobRequest) -> String {
    let speakers = match request.speakers {
        SpeakerMode::SpeakerLabels { max_speakers } => {
            serde_json::json!({"speaker_labels": max_speakers})
        }
        SpeakerMode::ChannelIdentification => serde_json::json!({"channel_identification": true}),
    };
    serde_json::json!({
        "media_uri": request.media_uri, "media_format": request.media_format,
        "output_bucket": request.output_bucket, "output_key": request.output_key, "speakers": speakers,
    })
    .to_string()
}

impl Transcriber for LocalTranscriber {
    async fn start_medical_job(&self, request: &MedicalJobRequest) -> Result<JobStart, PortError> {
        let session = request
            .output_key
            .rsplit('/')
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let now = now_ms();
        let inserted = self
            .db
            .lock()
            .execute(
                "INSERT INTO transcription_jobs (name, session_id, request, status, created_at, updated_at, attempts, available_at)
                 VALUES (?1, ?2, ?3, 'QUEUED', ?4, ?4, 0, ?4) ON CONFLICT (name) DO NOTHING",
                params![request.job_name, session, request_json(request), now],
            )
            .map_err(|_| PortError::new(PortErrorKind::Unavailable, "local-transcribe", "StartMedicalTranscriptionJob"))?;
        Ok(if inserted == 1 {
            JobStart::Started
        } else {
            JobStart::AlreadyExists
        })
    }

    async fn get_medical_job(&self, job_name: &str) -> Result<MedicalJob, PortError> {
        let error = |kind| PortError::new(kind, "local-transcribe", "GetMedicalTranscriptionJob");
        let row: Option<(String, Option<String>, String)> = self
            .db
            .lock()
            .query_row(
                "SELECT status, failure_reason, request FROM transcription_jobs WHERE name = ?1",
                [job_name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|_| error(PortErrorKind::Unavailable))?;
        let Some((status, failure_reason, request)) = row else {
            return Err(error(PortErrorKind::NotFound));
        };
        let request: serde_json::Value = serde_json::from_str(&request).unwrap_or_default();
        let field = |k: &str| request[k].as_str().unwrap_or_default().to_owned();
        let state = match status.as_str() {
            "COMPLETED" => JobState::Completed {
                transcript_uri: Some(format!(
                    "s3://{}/{}",
                    field("output_bucket"),
                    field("output_key")
                )),
            },
            "FAILED" => JobState::Failed {
                reason: failure_reason.unwrap_or_default(),
            },
            "IN_PROGRESS" => JobState::InProgress,
            _ => JobState::Queued,
        };
        let speakers = match request["speakers"]["speaker_labels"].as_u64() {
            Some(n) => SpeakerMode::SpeakerLabels {
                max_speakers: u8::try_from(n).unwrap_or(2),
            },
            None => SpeakerMode::ChannelIdentification,
        };
        Ok(MedicalJob {
            state,
            request: Some(MedicalJobRequest {
                job_name: job_name.to_owned(),
                media_uri: field("media_uri"),
                media_format: field("media_format"),
                output_bucket: field("output_bucket"),
                output_key: field("output_key"),
                output_kms_key_id: None,
                specialty: "PRIMARYCARE".to_owned(),
                conversation_type: "CONVERSATION".to_owned(),
                speakers,
                language_code: "en-US".to_owned(),
                vocabulary_name: None,
                identify_phi: false,
            }),
        })
    }
}

/// A job's state as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub name: String,
    pub session_id: String,
    pub status: String,
    pub failure_reason: Option<String>,
    pub attempts: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn jobs(db: &Db, session: Option<&str>) -> rusqlite::Result<Vec<JobRow>> {
    let connection = db.lock();
    let mut statement = connection.prepare(
        "SELECT name, session_id, status, failure_reason, attempts, created_at, updated_at FROM transcription_jobs
         WHERE ?1 IS NULL OR session_id = ?1 ORDER BY created_at, name",
    )?;
    let rows = statement
        .query_map([session], |r| {
            Ok(JobRow {
                name: r.get(0)?,
                session_id: r.get(1)?,
                status: r.get(2)?,
                failure_reason: r.get(3)?,
                attempts: r.get(4)?,
                created_at: r.get(5)?,
                updated_at: r.get(6)?,
            })
        })?
        .collect();
    rows
}

/// Releases claims of a previous run so their jobs start again now.
pub fn release_claims(db: &Db) -> rusqlite::Result<usize> {
    db.lock().execute("UPDATE transcription_jobs SET status = 'QUEUED', available_at = ?1 WHERE status = 'IN_PROGRESS'", [now_ms()])
}

/// Counts of jobs by status.
pub fn pending_jobs(db: &Db) -> rusqlite::Result<u64> {
    db.lock()
        .query_row(
            "SELECT COUNT(*) FROM transcription_jobs WHERE status IN ('QUEUED', 'IN_PROGRESS')",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n.max(0) as u64)
}

/// Runs jobs with an engine, one at a time.
pub struct JobWorker<E: SpeechToText> {
    pub db: Db,
    pub store: FsStore,
    pub engine: Arc<E>,
    /// Where jobs that fail for good are parked, with their reason, for an operator.
    pub dead_letters: LocalQueue,
    /// First retry delay; doubles per attempt (jittered).
    pub retry_base_ms: i64,
}

/// What one call of [`JobWorker::run_one`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Idle,
    Completed(String),
    Retrying(String),
    Failed(String, String),
}

impl<E: SpeechToText> JobWorker<E> {
    fn claim(&self) -> rusqlite::Result<Option<(String, String, u32)>> {
        let now = now_ms();
        self.db
            .lock()
            .query_row(
                "UPDATE transcription_jobs SET status = 'IN_PROGRESS', attempts = attempts + 1, available_at = ?1, updated_at = ?2
                 WHERE name = (SELECT name FROM transcription_jobs
                               WHERE (status = 'QUEUED' AND available_at <= ?2) OR (status = 'IN_PROGRESS' AND available_at <= ?2)
                               ORDER BY available_at, created_at LIMIT 1)
                 RETURNING name, request, attempts",
                params![now + LEASE_MS, now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
    }

    fn finish(
        &self,
        name: &str,
        status: &str,
        reason: Option<&str>,
        retry_in_ms: i64,
    ) -> rusqlite::Result<()> {
        let now = now_ms();
        self.db.lock().execute(
            "UPDATE transcription_jobs SET status = ?1, failure_reason = ?2, updated_at = ?3, available_at = ?4 WHERE name = ?5",
            params![status, reason, now, now + retry_in_ms, name],
        )?;
        Ok(())
    }

    /// Claims and runs the next due job, if any.
    pub async fn run_one(&self) -> Result<JobOutcome, PortError> {
        let unavailable =
            |_| PortError::new(PortErrorKind::Unavailable, "local-transcribe", "RunJob");
        let Some((name, request, attempts)) = self.claim().map_err(unavailable)? else {
            return Ok(JobOutcome::Idle);
        };
        let request: serde_json::Value =
            serde_json::from_str(&request).expect("jobs are stored as JSON");
        let field = |k: &str| request[k].as_str().unwrap_or_default().to_owned();
        let media_uri = field("media_uri");
        let (bucket, key) = media_uri
            .trim_start_matches("s3://")
            .split_once('/')
            .unwrap_or_default();
        let result = match self.store.get(bucket, key).await {
            Ok(media) => {
                let engine = Arc::clone(&self.engine);
                let (format, job) = (field("media_format"), name.clone());
                tokio::task::spawn_blocking(move || engine.transcribe(&media.bytes, &format, &job))
                    .await
                    .unwrap_or_else(|_| {
                        Err(SttError {
                            retryable: false,
                            reason: "transcriber_panicked".into(),
                            detail: "the engine panicked".into(),
                        })
                    })
            }
            Err(err) if err.kind == PortErrorKind::NotFound => Err(SttError {
                retryable: false,
                reason: "media_missing".into(),
                detail: "the recording is gone".into(),
            }),
            Err(err) => Err(SttError {
                retryable: true,
                reason: err.kind.as_str().into(),
                detail: err.to_string(),
            }),
        };
        match result {
            Ok(json) => {
                let options = PutOptions {
                    content_type: Some("application/json".into()),
                    kms_key_id: None,
                };
                self.store
                    .put(
                        &field("output_bucket"),
                        &field("output_key"),
                        json,
                        &options,
                    )
                    .await?;
                self.finish(&name, "COMPLETED", None, 0)
                    .map_err(unavailable)?;
                info!(job_name = %name, "local transcription completed");
                Ok(JobOutcome::Completed(name))
            }
            Err(err) if err.retryable && attempts < MAX_ATTEMPTS => {
                let ceiling = self.retry_base_ms * (1i64 << attempts.min(6));
                let delay = ceiling / 2 + fastrand::i64(0..=ceiling / 2);
                warn!(job_name = %name, reason = %err.reason, detail = %err.detail, attempts, "transcription failed; will retry");
                self.finish(&name, "QUEUED", Some(&err.reason), delay)
                    .map_err(unavailable)?;
                Ok(JobOutcome::Retrying(name))
            }
            Err(err) => {
                warn!(job_name = %name, reason = %err.reason, detail = %err.detail, attempts, "transcription failed");
                let exhausted = if err.retryable {
                    format!("retries_exhausted:{}", err.reason)
                } else {
                    err.reason.clone()
                };
                let letter = DeadLetter {
                    body: serde_json::json!({"job_name": name, "request": request}).to_string(),
                    source_message_id: name.clone(),
                    stage: "transcribe",
                    error_class: if err.retryable {
                        "retryable"
                    } else {
                        "permanent"
                    },
                    reason: exhausted,
                    context: format!("job={name}"),
                    receive_count: attempts,
                    attributes: Default::default(),
                };
                // Park it before marking it failed: a crash in between runs the job again, never loses it.
                self.dead_letters.dead_letter(&letter).await?;
                self.finish(&name, "FAILED", Some(&err.reason), 0)
                    .map_err(unavailable)?;
                Ok(JobOutcome::Failed(name, err.reason))
            }
        }
    }
}

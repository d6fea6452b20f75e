//! The `intake` stage: an S3 notification for an uploaded recording becomes a Transcribe
//! Medical job (or a `Recording Rejected` event and a dead letter, when the upload can
//! never be transcribed).
//!
//! Idempotent: the job name is derived from the object version, so a redelivered
//! notification finds the job already started and only republishes the same event.
//!
//! Reprocess (`telepipe reprocess --from transcription`): a notification body carrying
//! `"telepipe": {"reprocess_attempt": n}` (n ≥ 2) next to `Records` runs the recording as
//! attempt `n`, job `{base}-a{n}` (the sweeper's retry naming), so a re-fed recording is
//! really transcribed again instead of answering `AlreadyExists`; still idempotent per
//! message (a redelivery finds job `{base}-a{n}` started).
//!
//! Status (`crate::status`): records `received` and `transcribing` under the job name,
//! `received` and `rejected` under the object reference for a refused upload, and
//! `failed` for any other permanent failure; a status write failure is retryable.

pub mod upload;

use crate::config::{
    prefix, ConfigError, Env, DEFAULT_CAPTURE_PREFIX, DEFAULT_RECORDINGS_PREFIX,
    DEFAULT_TRANSCRIPTS_PREFIX,
};
use crate::error::{PortErrorKind, PortResultExt, Reason, StageError};
use crate::media::SNIFF_BYTES;
use crate::metrics;
use crate::ports::SpeakerMode;
use crate::ports::{
    EventPublisher, JobStart, MedicalJobRequest, ObjectStore, OutgoingEvent, Transcriber,
};
use crate::records::for_each_record;
use crate::status::{now_ms, record_for_stage, State, StatusStore, Transition, NO_SESSION};
use crate::telemetry;
use telepipe_events::ids::{self, JobName};
use telepipe_events::pipeline::{
    schema_version, PipelineEvent, RecordingRef, RecordingRejected, RejectReason,
    TranscriptionStarted,
};
use telepipe_events::s3::S3Record;
use tracing::{info, warn};

/// The stage name used in dead letters, metrics and logs.
pub const STAGE: &str = "intake";

/// The ports `intake` touches.
pub struct IntakePorts<'a, S, T, P, St> {
    pub store: &'a S,
    pub transcriber: &'a T,
    pub events: &'a P,
    /// Records received, rejected, transcribing and failed.
    pub status: &'a St,
}

/// What happened to one record of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    Started {
        job_name: String,
    },
    AlreadyStarted {
        job_name: String,
    },
    /// Not an `ObjectCreated` event (e.g. a delete): nothing to transcribe.
    NotCreated,
    /// A Chime capture artifact (under `TELEPIPE_CAPTURE_PREFIX`): the `capture` stage joins
    /// those into one recording, so a notification that brings one here is acknowledged.
    CaptureArtifact,
}

/// Handles one SQS message body. `Ok` lists what each record led to; `Err` is the
/// worst failure among the records (retryable wins, so the message comes back and the
/// idempotent records are simply redone).
pub async fn handle_message<S, T, P, St>(
    ports: &IntakePorts<'_, S, T, P, St>,
    config: &IntakeConfig,
    body: &str,
) -> Result<Vec<RecordOutcome>, StageError>
where
    S: ObjectStore,
    T: Transcriber,
    P: EventPublisher,
    St: StatusStore,
{
    let attempt = reprocess_attempt(body);
    for_each_record(body, async |record: &S3Record| {
        handle_record(ports, config, record, attempt).await
    })
    .await
}

/// The attempt a reprocess notification asks for (see the module docs); 1 otherwise.
pub fn reprocess_attempt(body: &str) -> u32 {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["telepipe"]["reprocess_attempt"].as_u64())
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (2..=MAX_REPROCESS_ATTEMPT).contains(n))
        .unwrap_or(1)
}

/// Attempts above this are ignored (correlation ids follow attempts of up to 3 digits).
pub const MAX_REPROCESS_ATTEMPT: u32 = 999;

/// What is known of a recording so far, for its status: a refusal before a job name
/// exists is recorded under the object reference, everything after under the job name.
#[derive(Default)]
struct Progress {
    session_id: Option<String>,
    object_ref: Option<String>,
    job_name: Option<JobName>,
}

/// Rejections record themselves (received + rejected) before they return.
fn is_rejection(reason: Reason) -> bool {
    matches!(reason, Reason::Rejected(_))
}

async fn handle_record<S, T, P, St>(
    ports: &IntakePorts<'_, S, T, P, St>,
    config: &IntakeConfig,
    record: &S3Record,
    attempt: u32,
) -> Result<RecordOutcome, StageError>
where
    S: ObjectStore,
    T: Transcriber,
    P: EventPublisher,
    St: StatusStore,
{
    let mut progress = Progress::default();
    let result = process_record(ports, config, record, attempt, &mut progress).await;
    match &result {
        Err(err) if !err.is_retryable() && !is_rejection(err.reason) => {
            // A permanent failure that is not a rejection (e.g. Transcribe refused the
            // request): the message is parked, so the recording is failed.
            if let Some(object_ref) = &progress.object_ref {
                let session = progress.session_id.as_deref().unwrap_or(NO_SESSION);
                let (recording, attempt) = match &progress.job_name {
                    Some(job) => (job.recording(), job.attempt()),
                    None => (object_ref.as_str(), 1),
                };
                let mut failed =
                    Transition::new(session, recording, attempt, State::Failed, now_ms())
                        .object(object_ref)
                        .failure(err.class.as_str(), err.reason.as_str());
                failed.job_name = progress.job_name.as_ref().map(JobName::to_string);
                record_for_stage(ports.status, &failed).await?;
            }
        }
        _ => {}
    }
    result
}

async fn process_record<S, T, P, St>(
    ports: &IntakePorts<'_, S, T, P, St>,
    config: &IntakeConfig,
    record: &S3Record,
    attempt: u32,
    progress: &mut Progress,
) -> Result<RecordOutcome, StageError>
where
    S: ObjectStore,
    T: Transcriber,
    P: EventPublisher,
    St: StatusStore,
{
    let span = tracing::Span::current();
    if !record.is_object_created() {
        info!(event_name = %record.event_name, "not an object-created event; nothing to do");
        return Ok(RecordOutcome::NotCreated);
    }
    let bucket = record.bucket.as_str();
    let mut rejection = Rejection {
        events: ports.events,
        status: ports.status,
        recording: RecordingRef {
            bucket: bucket.to_owned(),
            object_ref: ids::object_ref(bucket, "<undecodable>"),
            version_id: record.version_id.clone(),
            size: record.size,
        },
        session_id: None,
        correlation_id: None,
    };
    let key = match &record.key {
        Ok(key) => key.as_str(),
        Err(err) => {
            return Err(rejection
                .reject(RejectReason::InvalidKey, &err.to_string())
                .await)
        }
    };
    rejection.recording.object_ref = ids::object_ref(bucket, key);
    progress.object_ref = Some(rejection.recording.object_ref.clone());
    span.record("object_ref", rejection.recording.object_ref.as_str());
    // Provisional until HEAD names the version (identical on versioned buckets).
    let noticed_version = record.version_id.as_deref().or(record.etag.as_deref());
    let noticed_version = noticed_version
        .or(record.sequencer.as_deref())
        .unwrap_or("");
    rejection.correlation_id = Some(telemetry::set_correlation_id(
        &telemetry::recording_correlation_id(bucket, key, noticed_version),
    ));

    let (session, format) = match upload::check_key(config, key) {
        Ok(upload::KeyVerdict::Recording { session, format }) => (session, format),
        Ok(upload::KeyVerdict::CaptureArtifact) => {
            metrics::ignored(STAGE, "capture_artifact");
            info!(object_ref = %ids::object_ref(bucket, key), "capture artifact acknowledged; the capture stage joins captures");
            return Ok(RecordOutcome::CaptureArtifact);
        }
        Err(refusal) => return Err(rejection.refuse(refusal).await),
    };
    span.record("session_id", session.as_str());
    rejection.session_id = Some(session.to_string());
    progress.session_id = Some(session.to_string());

    let context = || {
        format!(
            "session={session} object_ref={}",
            ids::object_ref(bucket, key)
        )
    };
    let version = record.version_id.as_deref();
    let head = match ports.store.head(bucket, key, version).await {
        Err(err) if err.kind == PortErrorKind::NotFound => {
            return Err(rejection
                .reject(RejectReason::ObjectMissing, "object not found")
                .await)
        }
        other => other.context(context)?,
    };
    rejection.recording.size = Some(head.size);
    // A versioned bucket names the exact content; otherwise the ETag does.
    let object_version = head
        .version_id
        .as_deref()
        .or(version)
        .or(head.etag.as_deref())
        .or(record.etag.as_deref())
        .or(record.sequencer.as_deref())
        .unwrap_or("");
    let correlation_id = telemetry::recording_correlation_id(bucket, key, object_version);
    rejection.correlation_id = Some(telemetry::set_correlation_id(&correlation_id));
    if let Err(refusal) = upload::check_head(config, &head) {
        return Err(rejection.refuse(refusal).await);
    }
    let leading = match ports
        .store
        .get_prefix(bucket, key, version, SNIFF_BYTES)
        .await
    {
        Err(err) if err.kind == PortErrorKind::NotFound => {
            return Err(rejection
                .reject(RejectReason::ObjectMissing, "object not found")
                .await)
        }
        other => other.context(context)?,
    };
    if let Err(refusal) = upload::check_leading_bytes(format, &leading) {
        return Err(rejection.refuse(refusal).await);
    }

    let job = JobName::for_recording(&session, bucket, key, object_version).attempt_of(attempt);
    let job_name = job.to_string();
    span.record("job_name", job_name.as_str());
    debug_assert_eq!(job.correlation_id(), Some(correlation_id.as_str()));
    progress.job_name = Some(job.clone());
    let object_ref = rejection.recording.object_ref.clone();
    let transition = |state| {
        Transition::new(session.as_str(), job.recording(), attempt, state, now_ms())
            .job(&job_name)
            .object(&object_ref)
    };
    record_for_stage(ports.status, &transition(State::Received)).await?;
    let output_key = format!("{}{}/{}.json", config.transcripts_prefix, session, job_name);
    let request = MedicalJobRequest {
        job_name: job_name.clone(),
        media_uri: format!("s3://{bucket}/{key}"),
        media_format: format.as_str().to_owned(),
        output_bucket: config.transcripts_bucket.clone(),
        output_key: output_key.clone(),
        output_kms_key_id: config.transcripts_kms_key_id.clone(),
        specialty: config.specialty.clone(),
        conversation_type: config.conversation_type.clone(),
        speakers: config.speakers,
        // Transcribe Medical batch transcribes US English only.
        language_code: "en-US".to_owned(),
        vocabulary_name: config.vocabulary_name.clone(),
        identify_phi: config.identify_phi,
    };
    let start = ports.transcriber.start_medical_job(&request).await;
    if let Err(err) = &start {
        metrics::observe_port_error(err);
    }
    let start = start.context(|| format!("session={session} job={job_name}"))?;
    let already_started = start == JobStart::AlreadyExists;
    record_for_stage(ports.status, &transition(State::Transcribing)).await?;
    let event = TranscriptionStarted {
        schema_version: schema_version(),
        event_id: TranscriptionStarted::id_for(&job_name),
        session_id: session.to_string(),
        job_name: job_name.clone(),
        recording: RecordingRef {
            version_id: head.version_id.clone().or(record.version_id.clone()),
            ..rejection.recording
        },
        media_format: format.as_str().to_owned(),
        transcript_uri: format!("s3://{}/{}", config.transcripts_bucket, output_key),
        already_started,
        correlation_id: rejection.correlation_id.clone(),
    };
    ports
        .events
        .publish(&OutgoingEvent::from_event(&event))
        .await
        .context(|| {
            format!(
                "session={session} job={job_name} event={}",
                TranscriptionStarted::DETAIL_TYPE
            )
        })?;
    if already_started {
        info!(
            media_format = format.as_str(),
            "transcription job already existed (redelivery)"
        );
        Ok(RecordOutcome::AlreadyStarted { job_name })
    } else {
        info!(
            media_format = format.as_str(),
            size = head.size,
            "transcription job started"
        );
        Ok(RecordOutcome::Started { job_name })
    }
}

/// Publishes `Recording Rejected` and turns the reason into the permanent error that
/// dead-letters the message.
struct Rejection<'a, P, St> {
    events: &'a P,
    status: &'a St,
    recording: RecordingRef,
    session_id: Option<String>,
    /// The correlation id in effect (see `telemetry`), once the key is read.
    correlation_id: Option<String>,
}

impl<P: EventPublisher, St: StatusStore> Rejection<'_, P, St> {
    async fn refuse(&self, refusal: upload::Refusal) -> StageError {
        self.reject(refusal.reason, &refusal.why).await
    }

    async fn reject(&self, reason: RejectReason, why: &str) -> StageError {
        warn!(reason = reason.as_str(), why, "recording rejected");
        metrics::rejected(STAGE, reason.as_str());
        let session = self.session_id.as_deref().unwrap_or(NO_SESSION);
        let object_ref = &self.recording.object_ref;
        let at = now_ms();
        for transition in [
            Transition::new(session, object_ref, 1, State::Received, at).object(object_ref),
            Transition::new(session, object_ref, 1, State::Rejected, at)
                .object(object_ref)
                .failure("permanent", reason.as_str()),
        ] {
            if let Err(err) = record_for_stage(self.status, &transition).await {
                return err;
            }
        }
        let event = RecordingRejected {
            schema_version: schema_version(),
            event_id: RecordingRejected::id_for(&self.recording, reason),
            session_id: self.session_id.clone(),
            reason,
            recording: self.recording.clone(),
            correlation_id: self.correlation_id.clone(),
        };
        let context = format!(
            "session={} object_ref={}: {why}",
            self.session_id.as_deref().unwrap_or("-"),
            self.recording.object_ref
        );
        match self
            .events
            .publish(&OutgoingEvent::from_event(&event))
            .await
        {
            Ok(()) => StageError::permanent(reason, context),
            // The rejection must be announced before the message is parked: retry it.
            Err(err) => StageError::from_port(err, context),
        }
    }
}

/// The `intake` stage's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeConfig {
    /// `TELEPIPE_RECORDINGS_PREFIX` (default `recordings/`).
    pub recordings_prefix: String,
    /// `TELEPIPE_MAX_RECORDING_BYTES` (default 2 GiB, Transcribe's cap).
    pub max_recording_bytes: u64,
    /// `TELEPIPE_TRANSCRIPTS_BUCKET` (required).
    pub transcripts_bucket: String,
    /// `TELEPIPE_TRANSCRIPTS_PREFIX` (default `transcripts/`).
    pub transcripts_prefix: String,
    /// `TELEPIPE_TRANSCRIPTS_KMS_KEY_ID` (optional): KMS key for transcript output.
    pub transcripts_kms_key_id: Option<String>,
    /// `TELEPIPE_CHANNEL_IDENTIFICATION` (default false) or `TELEPIPE_MAX_SPEAKERS` (default 2, 2–30).
    pub speakers: SpeakerMode,
    /// `TELEPIPE_SPECIALTY` (default `PRIMARYCARE`, the only one Transcribe Medical offers).
    pub specialty: String,
    /// `TELEPIPE_CONVERSATION_TYPE` (default `CONVERSATION`; or `DICTATION`).
    pub conversation_type: String,
    /// `TELEPIPE_CAPTURE_PREFIX` (default `captures/`): Chime capture artifacts, which
    /// intake acknowledges and ignores if a notification brings them.
    pub capture_prefix: String,
    /// `TELEPIPE_VOCABULARY_NAME` (optional): a Transcribe Medical custom vocabulary.
    pub vocabulary_name: Option<String>,
    /// `TELEPIPE_IDENTIFY_PHI` (default false): `ContentIdentificationType=PHI`.
    pub identify_phi: bool,
}

pub const DEFAULT_MAX_RECORDING_BYTES: u64 = 2 * 1024 * 1024 * 1024;

impl IntakeConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let channels = env.flag("TELEPIPE_CHANNEL_IDENTIFICATION", false)?;
        let max_speakers =
            env.parsed("TELEPIPE_MAX_SPEAKERS", 2u8, "a whole number from 2 to 30")?;
        if !(2..=30).contains(&max_speakers) {
            return Err(ConfigError {
                variable: "TELEPIPE_MAX_SPEAKERS",
                problem: "must be from 2 to 30".into(),
            });
        }
        let conversation_type = env
            .or("TELEPIPE_CONVERSATION_TYPE", "CONVERSATION")
            .to_ascii_uppercase();
        if !matches!(conversation_type.as_str(), "CONVERSATION" | "DICTATION") {
            return Err(ConfigError {
                variable: "TELEPIPE_CONVERSATION_TYPE",
                problem: "must be CONVERSATION or DICTATION".into(),
            });
        }
        let max_recording_bytes = env.parsed(
            "TELEPIPE_MAX_RECORDING_BYTES",
            DEFAULT_MAX_RECORDING_BYTES,
            "a size in bytes",
        )?;
        Ok(Self {
            recordings_prefix: prefix(
                env,
                "TELEPIPE_RECORDINGS_PREFIX",
                DEFAULT_RECORDINGS_PREFIX,
            )?,
            max_recording_bytes,
            transcripts_bucket: env.required("TELEPIPE_TRANSCRIPTS_BUCKET")?,
            transcripts_prefix: prefix(
                env,
                "TELEPIPE_TRANSCRIPTS_PREFIX",
                DEFAULT_TRANSCRIPTS_PREFIX,
            )?,
            transcripts_kms_key_id: env.optional("TELEPIPE_TRANSCRIPTS_KMS_KEY_ID"),
            speakers: if channels {
                SpeakerMode::ChannelIdentification
            } else {
                SpeakerMode::SpeakerLabels { max_speakers }
            },
            specialty: env.or("TELEPIPE_SPECIALTY", "PRIMARYCARE"),
            conversation_type,
            capture_prefix: prefix(env, "TELEPIPE_CAPTURE_PREFIX", DEFAULT_CAPTURE_PREFIX)?,
            vocabulary_name: vocabulary_name(env, "TELEPIPE_VOCABULARY_NAME")?,
            identify_phi: env.flag("TELEPIPE_IDENTIFY_PHI", false)?,
        })
    }
}

/// Transcribe's vocabulary names: 1–200 of letters, digits, `.`, `_`, `-`.
fn vocabulary_name(env: &Env, variable: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(name) = env.optional(variable) else {
        return Ok(None);
    };
    let name = name.trim().to_owned();
    if name.len() > 200
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ConfigError {
            variable,
            problem: "must be 1-200 of letters, digits, '.', '_', '-'".into(),
        });
    }
    Ok(Some(name))
}

#[cfg(test)]
mod reprocess_tests {
    use super::*;
    use crate::config::Env;
    use crate::memory::{MemoryEvents, MemoryStatus, MemoryStore, MemoryTranscriber};

    fn body(attempt: Option<u32>) -> String {
        let mut body = serde_json::json!({"Records": [{
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "rec"}, "object": {"key": "recordings/visit-1/call.wav", "size": 44}}
        }]});
        if let Some(n) = attempt {
            body["telepipe"] = serde_json::json!({ "reprocess_attempt": n });
        }
        body.to_string()
    }

    #[tokio::test]
    async fn a_reprocess_marker_starts_a_new_attempt_of_the_same_recording() {
        let store = MemoryStore::default();
        let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
        wav.extend([
            16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0,
        ]);
        wav.extend(b"data\x00\x00\x00\x00");
        wav.extend([0u8; 64]);
        store.insert("rec", "recordings/visit-1/call.wav", wav);
        let (transcriber, events, status) = (
            MemoryTranscriber::default(),
            MemoryEvents::default(),
            MemoryStatus::default(),
        );
        let ports = IntakePorts {
            store: &store,
            transcriber: &transcriber,
            events: &events,
            status: &status,
        };
        let config =
            IntakeConfig::from_env(&Env::from_pairs(&[("TELEPIPE_TRANSCRIPTS_BUCKET", "t")]))
                .unwrap();
        let first = handle_message(&ports, &config, &body(None)).await.unwrap();
        let [RecordOutcome::Started { job_name: base }] = first.as_slice() else {
            panic!("{first:?}")
        };
        // Re-fed as before: already started. Re-fed as attempt 2: a new job.
        let again = handle_message(&ports, &config, &body(None)).await.unwrap();
        assert!(matches!(again[0], RecordOutcome::AlreadyStarted { .. }));
        let second = handle_message(&ports, &config, &body(Some(2)))
            .await
            .unwrap();
        assert_eq!(
            second,
            vec![RecordOutcome::Started {
                job_name: format!("{base}-a2")
            }]
        );
        let redelivered = handle_message(&ports, &config, &body(Some(2)))
            .await
            .unwrap();
        assert!(matches!(
            redelivered[0],
            RecordOutcome::AlreadyStarted { .. }
        ));
        let request = transcriber.jobs.lock().unwrap()[&format!("{base}-a2")].clone();
        assert!(request.output_key.ends_with(&format!("{base}-a2.json")));
        assert!(status
            .all()
            .iter()
            .any(|t| t.recording == *base && t.attempt == 2 && t.state == State::Transcribing));
        // Out-of-range or malformed markers are plain deliveries.
        for text in [
            body(Some(1)),
            body(Some(1_000)),
            r#"{"telepipe":{"reprocess_attempt":"2"}}"#.into(),
        ] {
            assert_eq!(reprocess_attempt(&text), 1);
        }
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use crate::config::Env;

    #[test]
    fn missing_required_variable_is_named() {
        let err = IntakeConfig::from_env(&Env::from_pairs(&[])).unwrap_err();
        assert_eq!(err.variable, "TELEPIPE_TRANSCRIPTS_BUCKET");
        assert!(err
            .to_string()
            .contains("TELEPIPE_TRANSCRIPTS_BUCKET is not set"));
    }

    #[test]
    fn invalid_values_are_named_with_what_was_given() {
        let pairs = [
            ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
            ("TELEPIPE_MAX_SPEAKERS", "many"),
        ];
        let err = IntakeConfig::from_env(&Env::from_pairs(&pairs)).unwrap_err();
        assert_eq!(err.variable, "TELEPIPE_MAX_SPEAKERS");
        assert!(err.problem.contains("\"many\""));
        let pairs = [
            ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
            ("TELEPIPE_MAX_SPEAKERS", "31"),
        ];
        assert_eq!(
            IntakeConfig::from_env(&Env::from_pairs(&pairs))
                .unwrap_err()
                .variable,
            "TELEPIPE_MAX_SPEAKERS"
        );
    }

    #[test]
    fn defaults_and_prefix_normalisation() {
        let pairs = [
            ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
            ("TELEPIPE_RECORDINGS_PREFIX", "calls"),
        ];
        let cfg = IntakeConfig::from_env(&Env::from_pairs(&pairs)).unwrap();
        assert_eq!(cfg.recordings_prefix, "calls/");
        assert_eq!(cfg.transcripts_prefix, "transcripts/");
        assert_eq!(cfg.max_recording_bytes, DEFAULT_MAX_RECORDING_BYTES);
        assert_eq!(cfg.speakers, SpeakerMode::SpeakerLabels { max_speakers: 2 });
        let pairs = [
            ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
            ("TELEPIPE_CHANNEL_IDENTIFICATION", "true"),
        ];
        let cfg = IntakeConfig::from_env(&Env::from_pairs(&pairs)).unwrap();
        assert_eq!(cfg.speakers, SpeakerMode::ChannelIdentification);
    }
}

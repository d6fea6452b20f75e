//! The `sweeper` stage: run on a schedule, it finds recordings that sat in an open
//! state (received, transcribing, transcribed, extracting) past that state's deadline
//! and does what can be done about each:
//!
//! - transcribing, and Transcribe says the job **FAILED**: publishes `Transcription
//!   Failed`; a transient reason (internal failure, throttling, service unavailable,
//!   timeout) with attempts left starts attempt `n+1` as job `{base}-a{n+1}`, anything
//!   else parks the recording as `failed` with the reason code;
//! - transcribing, and the job **COMPLETED** (its transcript notification was lost):
//!   re-feeds `clinical` with the S3 notification of the transcript object, once;
//! - anything else past its deadline (a job still queued or running, a job Transcribe
//!   no longer knows, a recording stuck before or after transcription): publishes
//!   `Stage Stalled`, once per recording, attempt and state.
//!
//! A plain function of its ports, its configuration and the time (`now_ms`), so every
//! decision is testable with a fake clock. Safe to run twice, or concurrently with the
//! stages: job names are deterministic (a second start answers `AlreadyExists`), event
//! ids are stable, and the status store keeps one entry per recording, attempt and step.

use crate::config::{minutes_within, prefix, ConfigError, Env, DEFAULT_TRANSCRIPTS_PREFIX};
use crate::error::{ErrorClass, PortErrorKind, PortResultExt, StageError};
use crate::ports::{EventPublisher, JobState, OutgoingEvent, RefeedQueue, Transcriber};
use crate::status::{record_for_stage, RecordingStatus, State, StatusStore, Transition};
use telepipe_events::ids::JobName;
use telepipe_events::pipeline::schema_version;
use telepipe_events::s3::encode_key;
use telepipe_events::sweeper::{StageStalled, TranscriptionFailed};
use tracing::{info, info_span, warn, Instrument};

pub const STAGE: &str = "sweeper";

/// The ports the sweeper touches.
pub struct SweeperPorts<'a, T, P, St, Q> {
    pub transcriber: &'a T,
    pub events: &'a P,
    pub status: &'a St,
    /// The `clinical` stage's queue, for re-feeding lost transcript notifications.
    pub clinical_queue: &'a Q,
}

/// What the sweeper did about one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepAction {
    /// The job had completed: its transcript was announced to `clinical` again.
    Refed { recording: String, job_name: String },
    /// The job failed transiently: attempt `attempt` was started as `next_job_name`.
    Retried {
        recording: String,
        failed_job: String,
        next_job_name: String,
        attempt: u32,
        reason: String,
    },
    /// The job failed for good (or ran out of attempts): the recording is `failed`.
    Parked {
        recording: String,
        job_name: String,
        reason: String,
    },
    /// Past its deadline: `Stage Stalled` published.
    Stalled { recording: String, stage: State },
    /// Past its deadline and already reported by an earlier sweep.
    StillStalled { recording: String, stage: State },
    /// Transcribing, due for a look but not yet past its deadline: nothing to do.
    Waiting { recording: String },
}

/// One sweep's work.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Recordings the status store returned as due.
    pub examined: usize,
    pub actions: Vec<SweepAction>,
    /// Recordings that could not be dealt with this time (the next sweep tries again).
    pub errors: Vec<StageError>,
}

/// How Transcribe's failure text is classified: a stable code and whether a retry may help.
///
/// Known local codes pass through; otherwise phrases are matched case-insensitively.
/// Unrecognised reasons count as transient (the taxonomy's "retry unless known
/// permanent"): attempts are bounded, so a wrong guess costs at most the attempts.
pub fn classify_failure(reason: &str) -> (&'static str, bool) {
    let text = reason.trim().to_ascii_lowercase();
    // Reason codes of the local transcriber and of port errors.
    for (code, transient) in [
        ("inference_failed", true),
        ("unavailable", true),
        ("timeout", true),
        ("throttled", true),
        ("other", true),
        ("unreadable_audio", false),
        ("unsupported_local_format", false),
        ("media_missing", false),
        ("transcriber_unavailable", false),
        ("transcriber_panicked", false),
    ] {
        if text == code {
            return (code, transient);
        }
    }
    let has = |phrases: &[&str]| phrases.iter().any(|p| text.contains(p));
    if has(&[
        "internal failure",
        "internal error",
        "internalfailure",
        "internal server",
    ]) {
        ("internal_failure", true)
    } else if has(&[
        "throttl",
        "rate exceeded",
        "too many requests",
        "limit exceeded",
        "slow down",
    ]) {
        ("throttled", true)
    } else if has(&[
        "service unavailable",
        "temporarily",
        "try again",
        "unavailable",
    ]) {
        ("service_unavailable", true)
    } else if has(&["timed out", "timeout"]) {
        ("timeout", true)
    } else if has(&[
        "unsupported",
        "not supported",
        "media format",
        "format of the media",
    ]) {
        ("unsupported_media", false)
    } else if has(&[
        "access denied",
        "accessdenied",
        "permission",
        "forbidden",
        "not authorized",
        "kms",
    ]) {
        ("access_denied", false)
    } else if has(&[
        "not found",
        "does not exist",
        "no such",
        "nosuchkey",
        "couldn't find",
        "could not find",
        "could not be found",
        "cannot be found",
        "can't be found",
        "couldn't be found",
    ]) {
        ("media_missing", false)
    } else if has(&[
        "invalid",
        "corrupt",
        "decode",
        "sample rate",
        "no audio",
        "no speech",
        "too short",
        "too long",
        "duration",
        "file size",
        "empty",
    ]) {
        ("invalid_media", false)
    } else {
        ("unclassified", true)
    }
}

/// An S3 `ObjectCreated` notification body for one object, in the shape S3 sends to SQS.
pub fn object_created_notification(bucket: &str, key: &str) -> String {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "telepipe-sweeper-refeed",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encode_key(key)}
        }
    }]})
    .to_string()
}

/// One sweep at `now_ms`.
///
/// `Err` only when the status store cannot be asked what is due; each recording's own
/// failures are collected in the report and retried by the next sweep.
pub async fn sweep<T, P, St, Q>(
    ports: &SweeperPorts<'_, T, P, St, Q>,
    config: &SweeperConfig,
    now_ms: i64,
) -> Result<SweepReport, StageError>
where
    T: Transcriber,
    P: EventPublisher,
    St: StatusStore,
    Q: RefeedQueue,
{
    let due = ports
        .status
        .stuck(now_ms, &config.deadlines)
        .await
        .context(|| "status store: stuck recordings".to_owned())?;
    let mut report = SweepReport {
        examined: due.len(),
        ..SweepReport::default()
    };
    for recording in due {
        let span = info_span!(
            "recording",
            session_id = %recording.session_id,
            recording = %recording.recording,
            state = recording.state.as_str(),
            attempt = recording.attempt
        );
        match sweep_one(ports, config, now_ms, &recording)
            .instrument(span)
            .await
        {
            Ok(action) => report.actions.push(action),
            Err(err) => {
                warn!(session_id = %recording.session_id, recording = %recording.recording, error = %err, "could not sweep recording; next sweep retries");
                report.errors.push(err);
            }
        }
    }
    info!(
        examined = report.examined,
        actions = report.actions.len(),
        errors = report.errors.len(),
        "sweep done"
    );
    Ok(report)
}

/// The job name of `attempt` of `recording` (a recording's first job name).
fn job_of(recording: &str, attempt: u32) -> String {
    match JobName::parse(recording) {
        Some(job) => job.attempt_of(attempt).to_string(),
        // Not a job name (an object reference): there is no job to name.
        None => recording.to_owned(),
    }
}

fn minutes_between(from_ms: i64, to_ms: i64) -> u64 {
    (to_ms.saturating_sub(from_ms).max(0) / 60_000) as u64
}

async fn sweep_one<T, P, St, Q>(
    ports: &SweeperPorts<'_, T, P, St, Q>,
    config: &SweeperConfig,
    now_ms: i64,
    recording: &RecordingStatus,
) -> Result<SweepAction, StageError>
where
    T: Transcriber,
    P: EventPublisher,
    St: StatusStore,
    Q: RefeedQueue,
{
    let context = || {
        format!(
            "session={} recording={} attempt={}",
            recording.session_id, recording.recording, recording.attempt
        )
    };
    let past_deadline = config
        .deadlines
        .deadline_minutes(recording.state)
        .is_some_and(|m| minutes_between(recording.since_ms, now_ms) >= m);
    if recording.state != State::Transcribing {
        return stalled(ports, config, now_ms, recording, None).await;
    }
    let job_name = recording
        .job_name
        .clone()
        .unwrap_or_else(|| job_of(&recording.recording, recording.attempt));
    let job = match ports.transcriber.get_medical_job(&job_name).await {
        Err(err) if err.kind == PortErrorKind::NotFound => {
            if !past_deadline {
                return Ok(SweepAction::Waiting {
                    recording: recording.recording.clone(),
                });
            }
            return stalled(ports, config, now_ms, recording, Some("NOT_FOUND")).await;
        }
        other => other.context(context)?,
    };
    match job.state {
        JobState::Queued | JobState::InProgress if !past_deadline => Ok(SweepAction::Waiting {
            recording: recording.recording.clone(),
        }),
        JobState::Queued | JobState::InProgress => {
            stalled(ports, config, now_ms, recording, Some(job.state.as_str())).await
        }
        JobState::Completed { .. } => {
            // The transcript is where intake (or the retry) told Transcribe to write it.
            let key = format!(
                "{}{}/{}.json",
                config.transcripts_prefix, recording.session_id, job_name
            );
            ports
                .clinical_queue
                .send(&object_created_notification(
                    &config.transcripts_bucket,
                    &key,
                ))
                .await
                .context(context)?;
            let transcribed = Transition::new(
                &recording.session_id,
                &recording.recording,
                recording.attempt,
                State::Transcribed,
                now_ms,
            )
            .job(&job_name)
            .reason("refed_by_sweeper");
            record_for_stage(ports.status, &with_object(transcribed, recording)).await?;
            info!(job_name = %job_name, "completed job's transcript re-fed to clinical");
            Ok(SweepAction::Refed {
                recording: recording.recording.clone(),
                job_name,
            })
        }
        JobState::Failed { reason } => {
            let (code, transient) = classify_failure(&reason);
            let can_retry =
                transient && recording.attempt < config.max_attempts && job.request.is_some();
            let next_attempt = recording.attempt + 1;
            let next_job_name = job_of(&recording.recording, next_attempt);
            if can_retry {
                let mut request = job.request.clone().expect("checked above");
                request.job_name = next_job_name.clone();
                request.output_bucket = config.transcripts_bucket.clone();
                request.output_key = format!(
                    "{}{}/{}.json",
                    config.transcripts_prefix, recording.session_id, next_job_name
                );
                request.output_kms_key_id = config.transcripts_kms_key_id.clone();
                // AlreadyExists: an earlier sweep started it and stopped before recording it.
                ports
                    .transcriber
                    .start_medical_job(&request)
                    .await
                    .context(|| format!("{} job={next_job_name}", context()))?;
            }
            let event = TranscriptionFailed {
                schema_version: schema_version(),
                event_id: TranscriptionFailed::id_for(&job_name),
                session_id: recording.session_id.clone(),
                job_name: job_name.clone(),
                attempt: recording.attempt,
                reason: code.to_owned(),
                transient,
                will_retry: can_retry,
                next_job_name: can_retry.then(|| next_job_name.clone()),
            };
            ports
                .events
                .publish(&OutgoingEvent::from_event(&event))
                .await
                .context(context)?;
            crate::metrics::count(&[("Stage", "transcribe")], "TranscriptionFailed", 1);
            let stored_reason = if transient && !can_retry {
                format!("retries_exhausted:{code}")
            } else {
                code.to_owned()
            };
            let class = if transient {
                ErrorClass::Retryable
            } else {
                ErrorClass::Permanent
            };
            let failed = Transition::new(
                &recording.session_id,
                &recording.recording,
                recording.attempt,
                State::Failed,
                now_ms,
            )
            .job(&job_name)
            .failure(class.as_str(), &stored_reason);
            record_for_stage(ports.status, &with_object(failed, recording)).await?;
            if can_retry {
                let next = Transition::new(
                    &recording.session_id,
                    &recording.recording,
                    next_attempt,
                    State::Transcribing,
                    now_ms,
                )
                .job(&next_job_name);
                record_for_stage(ports.status, &with_object(next, recording)).await?;
                warn!(job_name = %job_name, next_job_name = %next_job_name, reason = code, "transcription failed transiently; retrying");
                Ok(SweepAction::Retried {
                    recording: recording.recording.clone(),
                    failed_job: job_name,
                    next_job_name,
                    attempt: next_attempt,
                    reason: code.to_owned(),
                })
            } else {
                warn!(job_name = %job_name, reason = %stored_reason, "transcription failed; recording parked");
                Ok(SweepAction::Parked {
                    recording: recording.recording.clone(),
                    job_name,
                    reason: stored_reason,
                })
            }
        }
    }
}

fn with_object(mut transition: Transition, recording: &RecordingStatus) -> Transition {
    transition.object_ref = recording.object_ref.clone();
    transition
}

/// Publishes `Stage Stalled` unless an earlier sweep did (its mark is in the timeline),
/// then marks it. Publish first: a crash in between republishes the same event id.
async fn stalled<T, P, St, Q>(
    ports: &SweeperPorts<'_, T, P, St, Q>,
    config: &SweeperConfig,
    now_ms: i64,
    recording: &RecordingStatus,
    job_status: Option<&str>,
) -> Result<SweepAction, StageError>
where
    T: Transcriber,
    P: EventPublisher,
    St: StatusStore,
    Q: RefeedQueue,
{
    let context = || {
        format!(
            "session={} recording={} attempt={}",
            recording.session_id, recording.recording, recording.attempt
        )
    };
    let mark = Transition::new(
        &recording.session_id,
        &recording.recording,
        recording.attempt,
        State::Stalled,
        now_ms,
    )
    .reason(recording.state.as_str());
    let mark = Transition {
        job_name: recording.job_name.clone(),
        ..with_object(mark, recording)
    };
    let already = ports
        .status
        .timeline(&recording.session_id)
        .await
        .context(context)?
        .iter()
        .any(|t| t.key() == mark.key());
    if already {
        return Ok(SweepAction::StillStalled {
            recording: recording.recording.clone(),
            stage: recording.state,
        });
    }
    let event = StageStalled {
        schema_version: schema_version(),
        event_id: StageStalled::id_for(
            &recording.recording,
            recording.state.as_str(),
            recording.attempt,
            recording.since_ms,
        ),
        session_id: recording.session_id.clone(),
        recording: recording.recording.clone(),
        stage: recording.state.as_str().to_owned(),
        attempt: recording.attempt,
        job_name: recording.job_name.clone(),
        job_status: job_status.map(str::to_owned),
        minutes_stuck: minutes_between(recording.since_ms, now_ms),
        deadline_minutes: config
            .deadlines
            .deadline_minutes(recording.state)
            .unwrap_or_default(),
    };
    ports
        .events
        .publish(&OutgoingEvent::from_event(&event))
        .await
        .context(context)?;
    crate::metrics::count(&[("Stage", recording.state.as_str())], "Stalled", 1);
    record_for_stage(ports.status, &mark).await?;
    warn!(
        minutes_stuck = event.minutes_stuck,
        job_status = job_status.unwrap_or("-"),
        "stage stalled"
    );
    Ok(SweepAction::Stalled {
        recording: recording.recording.clone(),
        stage: recording.state,
    })
}

/// The sweeper's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweeperConfig {
    /// `TELEPIPE_DEADLINE_{RECEIVED,TRANSCRIBING,TRANSCRIBED,EXTRACTING}_MINUTES` and
    /// `TELEPIPE_TRANSCRIBE_CHECK_MINUTES`.
    pub deadlines: crate::status::Deadlines,
    /// `TELEPIPE_TRANSCRIBE_MAX_ATTEMPTS` (default 3, 1–10): transcription attempts per
    /// recording, the first included.
    pub max_attempts: u32,
    /// `TELEPIPE_TRANSCRIPTS_BUCKET` (required): where retried jobs write, and where a
    /// completed job's transcript is re-announced from.
    pub transcripts_bucket: String,
    /// `TELEPIPE_TRANSCRIPTS_PREFIX` (default `transcripts/`).
    pub transcripts_prefix: String,
    /// `TELEPIPE_TRANSCRIPTS_KMS_KEY_ID` (optional): KMS key for retried jobs' output.
    pub transcripts_kms_key_id: Option<String>,
}

impl SweeperConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        // Deadlines from a minute to a week.
        let minutes = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            let default = u32::try_from(default).unwrap_or(u32::MAX);
            minutes_within(env, name, default, 1..=10_080).map(u64::from)
        };
        let defaults = crate::status::Deadlines::default();
        let deadlines = crate::status::Deadlines {
            received_minutes: minutes(
                "TELEPIPE_DEADLINE_RECEIVED_MINUTES",
                defaults.received_minutes,
            )?,
            transcribe_check_minutes: minutes(
                "TELEPIPE_TRANSCRIBE_CHECK_MINUTES",
                defaults.transcribe_check_minutes,
            )?,
            transcribing_minutes: minutes(
                "TELEPIPE_DEADLINE_TRANSCRIBING_MINUTES",
                defaults.transcribing_minutes,
            )?,
            transcribed_minutes: minutes(
                "TELEPIPE_DEADLINE_TRANSCRIBED_MINUTES",
                defaults.transcribed_minutes,
            )?,
            extracting_minutes: minutes(
                "TELEPIPE_DEADLINE_EXTRACTING_MINUTES",
                defaults.extracting_minutes,
            )?,
        };
        let max_attempts = env.parsed(
            "TELEPIPE_TRANSCRIBE_MAX_ATTEMPTS",
            3u32,
            "a whole number from 1 to 10",
        )?;
        if !(1..=10).contains(&max_attempts) {
            return Err(ConfigError {
                variable: "TELEPIPE_TRANSCRIBE_MAX_ATTEMPTS",
                problem: "must be from 1 to 10".into(),
            });
        }
        let transcripts_prefix = prefix(
            env,
            "TELEPIPE_TRANSCRIPTS_PREFIX",
            DEFAULT_TRANSCRIPTS_PREFIX,
        )?;
        Ok(Self {
            deadlines,
            max_attempts,
            transcripts_bucket: env.required("TELEPIPE_TRANSCRIPTS_BUCKET")?,
            transcripts_prefix,
            transcripts_kms_key_id: env.optional("TELEPIPE_TRANSCRIPTS_KMS_KEY_ID"),
        })
    }
}

/// Where the sweeper re-feeds `clinical`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefeedConfig {
    /// `TELEPIPE_CLINICAL_QUEUE_URL` (required): the clinical queue, for re-sending lost
    /// transcript notifications.
    pub clinical_queue_url: String,
}

impl RefeedConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            clinical_queue_url: env.required("TELEPIPE_CLINICAL_QUEUE_URL")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use crate::status::Deadlines;

    #[test]
    fn failure_reasons_are_sorted_into_transient_and_permanent() {
        for (text, code) in [
            (
                "Internal failure. Please try your request again.",
                "internal_failure",
            ),
            ("Rate exceeded", "throttled"),
            (
                "The service is temporarily unavailable",
                "service_unavailable",
            ),
            ("inference_failed", "inference_failed"),
            ("Something nobody has seen", "unclassified"),
        ] {
            assert_eq!(classify_failure(text), (code, true), "{text}");
        }
        for (text, code) in [
            (
                "The media format provided does not match the detected media format.",
                "unsupported_media",
            ),
            ("Unsupported audio format", "unsupported_media"),
            ("Invalid file size: file size too large.", "invalid_media"),
            (
                "The specified S3 URI s3://b/recordings/x.wav could not be found.",
                "media_missing",
            ),
            ("Access denied to the output bucket", "access_denied"),
            ("unreadable_audio", "unreadable_audio"),
        ] {
            assert_eq!(classify_failure(text), (code, false), "{text}");
        }
    }

    #[test]
    fn config_defaults_and_validation() {
        let cfg =
            SweeperConfig::from_env(&Env::from_pairs(&[("TELEPIPE_TRANSCRIPTS_BUCKET", "t")]))
                .unwrap();
        assert_eq!(cfg.max_attempts, 3);
        assert_eq!(cfg.deadlines, Deadlines::default());
        assert_eq!(cfg.transcripts_prefix, "transcripts/");
        let err = SweeperConfig::from_env(&Env::from_pairs(&[
            ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
            ("TELEPIPE_DEADLINE_EXTRACTING_MINUTES", "0"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "TELEPIPE_DEADLINE_EXTRACTING_MINUTES");
        let err = SweeperConfig::from_env(&Env::from_pairs(&[
            ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
            ("TELEPIPE_TRANSCRIBE_MAX_ATTEMPTS", "11"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "TELEPIPE_TRANSCRIBE_MAX_ATTEMPTS");
    }
}

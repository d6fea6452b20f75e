//! The `capture` stage: an Amazon Chime SDK media capture of a telepipe session becomes one
//! recording.
//!
//! A capture pipeline writes the meeting as 5-second chunks under
//! `{capture prefix}{session_id}/audio/` (see `telepipe_events::capture`); intake never sees
//! them. When the capture ends (`chime:MediaPipelineDeleted`), this stage asks for a media
//! concatenation pipeline that joins the audio chunks into
//! `{recordings prefix}{session_id}/audio/{concatenation id}.mp4`, which the recordings
//! notification brings to intake as one recording. A capture that fails for good, or ends
//! with no audio, is published as `Recording Capture Failed`, which the sessions stage
//! treats like a recording that never arrived.
//!
//! Decisions are pure ([`plan`], [`after_lookup`]); the stage function only does the
//! lookups they ask for. Idempotent: the concatenation's `ClientRequestToken` is derived
//! from the capture pipeline id, so a redelivered event finds the same concatenation, and
//! the failure event's id is derived from its inputs.
//!
//! Telling a capture from a concatenation: the event detail carries no pipeline type
//! (Chime SDK developer guide, "Using Amazon Chime SDK media pipeline events": `eventType`,
//! `timestamp`, `meetingId`, `externalMeetingId`, `mediaPipelineId`, `mediaRegion`), so the
//! stage asks `GetMediaPipeline`, whose `MediaPipeline` answer sets exactly one of
//! `MediaCapturePipeline`, `MediaConcatenationPipeline`, ... (API reference, "MediaPipeline";
//! a stopped capture is still described, with `Status: Stopped`). Only when the pipeline is
//! no longer known does the stage fall back to the session's own capture folder, built from
//! the envelope's account and region.

pub use crate::config::DEFAULT_CAPTURE_PREFIX;
use crate::config::{prefix, ConfigError, Env, DEFAULT_RECORDINGS_PREFIX};
use crate::error::Reason;
use crate::error::{PortErrorKind, PortResultExt, StageError};
use crate::metrics;
use crate::ports::{
    ConcatenationRequest, EventPublisher, MediaPipelineKind, MediaPipelines, ObjectListing,
    OutgoingEvent,
};
use telepipe_events::capture::{
    is_audio_chunk, parse_capture_message, CaptureFailure, CaptureInput, MediaPipelineEvent,
    PipelineChange, RecordingCaptureFailed, AUDIO_FOLDER,
};
use telepipe_events::ids::SessionId;
use telepipe_events::pipeline::PipelineEvent;
use tracing::{info, warn};

/// The stage name used in dead letters, metrics and logs.
pub const STAGE: &str = "capture";

/// Keys listed to learn whether a capture holds audio (one is enough; a few tolerate
/// stray non-audio objects in the folder).
const LISTED_KEYS: usize = 50;

/// The ports `capture` touches.
pub struct CapturePorts<'a, M, L, P, A> {
    pub pipelines: &'a M,
    /// Lists the recordings bucket (capture and recording folders).
    pub listing: &'a L,
    pub events: &'a P,
    /// Each join started is audited (`capture_joined`); `None`: no audit store configured.
    pub audit: Option<&'a A>,
    /// Who acts in audit entries: `lambda:{function name}` or `local`.
    pub actor: &'a str,
}

/// Why an event led to no work. Each is acknowledged, counted and logged, never dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Another source, detail type or pipeline event type.
    OtherEvent,
    /// No `externalMeetingId`, or one that is not a session id: not a telepipe meeting.
    NotASession,
    /// A pipeline of a kind telepipe does not join (live connector, insights, stream).
    NotACapture,
    /// A concatenation pipeline ended: its file reaches intake through the bucket notification.
    ConcatenationEnded,
    /// The pipeline is no longer known and nothing in the session's folders says it was a capture.
    PipelineUnknown,
    /// The session already has a joined recording (a late or repeated event).
    AlreadyJoined,
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OtherEvent => "other_event",
            Self::NotASession => "not_a_session",
            Self::NotACapture => "not_a_capture",
            Self::ConcatenationEnded => "concatenation_ended",
            Self::PipelineUnknown => "pipeline_unknown",
            Self::AlreadyJoined => "already_joined",
        }
    }
}

/// What one message led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureOutcome {
    Ignored(IgnoreReason),
    /// A temporary failure, logged and counted: the pipeline may still recover.
    TemporaryFailure,
    /// A concatenation pipeline joins (or, locally, has joined) the capture's audio.
    Concatenating {
        concatenation_pipeline_id: String,
    },
    /// `Recording Capture Failed` was published with this reason.
    Failed(CaptureFailure),
}

/// What an event asks for before anything is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Done(CaptureOutcome),
    /// Look the pipeline up, then decide with [`after_lookup`].
    Inspect {
        session: SessionId,
        change: PipelineChange,
    },
}

/// The first, pure decision on a media pipeline event.
pub fn plan(event: &MediaPipelineEvent) -> Plan {
    let Some(session) = event.session_id.clone() else {
        return Plan::Done(CaptureOutcome::Ignored(IgnoreReason::NotASession));
    };
    match event.change {
        PipelineChange::Other => Plan::Done(CaptureOutcome::Ignored(IgnoreReason::OtherEvent)),
        PipelineChange::TemporaryFailure => Plan::Done(CaptureOutcome::TemporaryFailure),
        change @ (PipelineChange::Deleted | PipelineChange::PermanentFailure) => {
            Plan::Inspect { session, change }
        }
    }
}

/// What is known after looking the pipeline up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(MediaPipelineKind),
    /// `GetMediaPipeline` answered NotFound.
    Gone,
}

/// The second decision: what to do about the pipeline, given what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Done(CaptureOutcome),
    /// Publish `Recording Capture Failed` with this reason.
    Fail(CaptureFailure),
    /// List the capture's audio, then concatenate it (or fail it as empty). `arn` is the
    /// capture pipeline's ARN; `fallback` when it was rebuilt for a pipeline no longer known.
    Join {
        arn: Option<String>,
        fallback: bool,
    },
}

/// Pure: the next step for an ended or failed pipeline.
pub fn after_lookup(change: PipelineChange, lookup: &Lookup) -> Next {
    use MediaPipelineKind::{Capture, Concatenation, Other};
    match (change, lookup) {
        (_, Lookup::Found(Other)) => Next::Done(CaptureOutcome::Ignored(IgnoreReason::NotACapture)),
        // A failed concatenation leaves the session without a recording, like a failed capture.
        (PipelineChange::PermanentFailure, Lookup::Found(Capture(_) | Concatenation))
        | (PipelineChange::PermanentFailure, Lookup::Gone) => {
            Next::Fail(CaptureFailure::CaptureFailed)
        }
        (_, Lookup::Found(Concatenation)) => {
            Next::Done(CaptureOutcome::Ignored(IgnoreReason::ConcatenationEnded))
        }
        (_, Lookup::Found(Capture(capture))) => Next::Join {
            arn: Some(capture.arn.clone()),
            fallback: false,
        },
        (_, Lookup::Gone) => Next::Join {
            arn: None,
            fallback: true,
        },
    }
}

/// The idempotency token of the concatenation for a capture pipeline: 2–64 characters
/// of `[-_a-zA-Z0-9]` (pipeline ids are 36-character UUIDs).
pub fn concatenation_token(capture_pipeline_id: &str) -> String {
    format!("telepipe-{capture_pipeline_id}")
}

/// The ARN of a media pipeline in the account and region an event came from.
pub fn media_pipeline_arn(region: &str, account: &str, media_pipeline_id: &str) -> String {
    format!("arn:aws:chime:{region}:{account}:media-pipeline/{media_pipeline_id}")
}

/// Handles one capture-queue message.
pub async fn handle_message<M, L, P, A>(
    ports: &CapturePorts<'_, M, L, P, A>,
    config: &CaptureConfig,
    body: &str,
) -> Result<CaptureOutcome, StageError>
where
    M: MediaPipelines,
    L: ObjectListing,
    P: EventPublisher,
    A: crate::ports::AuditLog,
{
    let input = parse_capture_message(body)
        .map_err(|err| StageError::permanent(Reason::MalformedCaptureEvent, err.to_string()))?;
    let outcome = match input {
        CaptureInput::Other { .. } => CaptureOutcome::Ignored(IgnoreReason::OtherEvent),
        CaptureInput::MediaPipeline(event) => handle_event(ports, config, &event).await?,
    };
    match &outcome {
        CaptureOutcome::Ignored(reason) => {
            metrics::ignored(STAGE, reason.as_str());
            info!(reason = reason.as_str(), "media pipeline event ignored");
        }
        CaptureOutcome::TemporaryFailure => {
            metrics::capture("temporary_failure");
            warn!("media pipeline reported a temporary failure; it may still recover");
        }
        CaptureOutcome::Concatenating {
            concatenation_pipeline_id,
        } => {
            metrics::capture("concatenating");
            info!(%concatenation_pipeline_id, "capture audio being joined into one recording");
        }
        CaptureOutcome::Failed(reason) => {
            metrics::capture(reason.as_str());
            warn!(reason = reason.as_str(), "capture yields no recording");
        }
    }
    Ok(outcome)
}

async fn handle_event<M, L, P, A>(
    ports: &CapturePorts<'_, M, L, P, A>,
    config: &CaptureConfig,
    event: &MediaPipelineEvent,
) -> Result<CaptureOutcome, StageError>
where
    M: MediaPipelines,
    L: ObjectListing,
    P: EventPublisher,
    A: crate::ports::AuditLog,
{
    let (session, change) = match plan(event) {
        Plan::Done(outcome) => return Ok(outcome),
        Plan::Inspect { session, change } => (session, change),
    };
    let span = tracing::Span::current();
    span.record("session_id", session.as_str());
    let pipeline_id = event.media_pipeline_id.as_str();
    let context = || format!("session={} media_pipeline={pipeline_id}", session.as_str());
    let lookup = match ports.pipelines.get_media_pipeline(pipeline_id).await {
        Ok(kind) => Lookup::Found(kind),
        Err(err) if err.kind == PortErrorKind::NotFound => Lookup::Gone,
        Err(err) => {
            metrics::observe_port_error(&err);
            return Err(err).context(context);
        }
    };
    let (arn, fallback) = match after_lookup(change, &lookup) {
        Next::Done(outcome) => return Ok(outcome),
        Next::Fail(reason) => return fail(ports, &session, pipeline_id, reason).await,
        Next::Join { arn, fallback } => (arn, fallback),
    };

    let capture_folder = config.capture_folder(session.as_str());
    let recording_folder = config.recording_folder(session.as_str());
    if fallback {
        // A pipeline no longer known: join only what is plainly this session's capture,
        // and only once.
        let joined = list_audio(ports, config, &recording_folder, &context).await?;
        if joined {
            return Ok(CaptureOutcome::Ignored(IgnoreReason::AlreadyJoined));
        }
    }
    if !list_audio(ports, config, &capture_folder, &context).await? {
        return if fallback {
            Ok(CaptureOutcome::Ignored(IgnoreReason::PipelineUnknown))
        } else {
            fail(ports, &session, pipeline_id, CaptureFailure::CaptureEmpty).await
        };
    }
    let arn = match (arn, &event.region, &event.account) {
        (Some(arn), _, _) => arn,
        (None, Some(region), Some(account)) => media_pipeline_arn(region, account, pipeline_id),
        (None, _, _) => return Ok(CaptureOutcome::Ignored(IgnoreReason::PipelineUnknown)),
    };
    let request = ConcatenationRequest {
        client_request_token: concatenation_token(pipeline_id),
        capture_pipeline_arn: arn,
        capture_bucket: config.recordings_bucket.clone(),
        capture_folder,
        sink_bucket: config.recordings_bucket.clone(),
        sink_folder: recording_folder,
    };
    match ports.pipelines.create_concatenation(&request).await {
        Ok(crate::ports::Concatenation::Started(id)) => {
            if let Some(audit) = ports.audit {
                // The join is token-idempotent, so a redelivery names the same pipeline and
                // the entry (id from its content) is not added twice.
                let entry = telepipe_events::audit::AuditEntry::new(
                    ports.actor,
                    telepipe_events::audit::AuditAction::CaptureJoined,
                    Some(session.as_str()),
                    vec![
                        format!("capture:{pipeline_id}"),
                        format!("concatenation:{id}"),
                    ],
                    crate::status::now_ms(),
                );
                audit.append(&entry).await.context(context)?;
            }
            Ok(CaptureOutcome::Concatenating {
                concatenation_pipeline_id: id,
            })
        }
        Ok(crate::ports::Concatenation::NoAudio) => {
            fail(ports, &session, pipeline_id, CaptureFailure::CaptureEmpty).await
        }
        Err(err) => {
            metrics::observe_port_error(&err);
            Err(err).context(context)
        }
    }
}

/// Whether `{folder}audio/` holds at least one audio chunk.
async fn list_audio<M, L, P, A>(
    ports: &CapturePorts<'_, M, L, P, A>,
    config: &CaptureConfig,
    folder: &str,
    context: &impl Fn() -> String,
) -> Result<bool, StageError>
where
    L: ObjectListing,
{
    let prefix = format!("{folder}{AUDIO_FOLDER}");
    let keys = ports
        .listing
        .list_keys(&config.recordings_bucket, &prefix, LISTED_KEYS)
        .await
        .context(context)?;
    Ok(keys
        .iter()
        .filter_map(|key| key.strip_prefix(&prefix))
        .any(is_audio_chunk))
}

async fn fail<M, L, P, A>(
    ports: &CapturePorts<'_, M, L, P, A>,
    session: &SessionId,
    pipeline_id: &str,
    reason: CaptureFailure,
) -> Result<CaptureOutcome, StageError>
where
    P: EventPublisher,
{
    let event = RecordingCaptureFailed::new(session.as_str(), pipeline_id, reason);
    ports
        .events
        .publish(&OutgoingEvent::from_event(&event))
        .await
        .context(|| {
            format!(
                "session={} media_pipeline={pipeline_id} event={}",
                session.as_str(),
                RecordingCaptureFailed::DETAIL_TYPE
            )
        })?;
    Ok(CaptureOutcome::Failed(reason))
}

/// The `capture` stage's settings (Chime SDK media capture → one recording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// `TELEPIPE_RECORDINGS_BUCKET` (required): holds captures and recordings.
    pub recordings_bucket: String,
    /// `TELEPIPE_RECORDINGS_PREFIX` (default `recordings/`): where the joined recording goes.
    pub recordings_prefix: String,
    /// `TELEPIPE_CAPTURE_PREFIX` (default `captures/`): capture sinks are `{prefix}{session_id}`.
    pub capture_prefix: String,
}

impl CaptureConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let config = Self {
            recordings_bucket: env.required("TELEPIPE_RECORDINGS_BUCKET")?,
            recordings_prefix: prefix(
                env,
                "TELEPIPE_RECORDINGS_PREFIX",
                DEFAULT_RECORDINGS_PREFIX,
            )?,
            capture_prefix: prefix(env, "TELEPIPE_CAPTURE_PREFIX", DEFAULT_CAPTURE_PREFIX)?,
        };
        // Overlapping prefixes would feed capture chunks to intake one by one.
        if config.capture_prefix.starts_with(&config.recordings_prefix)
            || config.recordings_prefix.starts_with(&config.capture_prefix)
        {
            return Err(ConfigError {
                variable: "TELEPIPE_CAPTURE_PREFIX",
                problem: "must not overlap TELEPIPE_RECORDINGS_PREFIX".into(),
            });
        }
        Ok(config)
    }

    /// `{capture prefix}{session}/`: the sink folder of a session's capture.
    pub fn capture_folder(&self, session: &str) -> String {
        format!("{}{session}/", self.capture_prefix)
    }

    /// `{recordings prefix}{session}/`: where the joined recording is written.
    pub fn recording_folder(&self, session: &str) -> String {
        format!("{}{session}/", self.recordings_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::CapturePipeline;

    fn event(change: PipelineChange, session: Option<&str>) -> MediaPipelineEvent {
        MediaPipelineEvent {
            change,
            media_pipeline_id: "e40ee45e-2ed1-408e-9156-f52b8208a491".into(),
            session_id: session.map(|s| SessionId::parse(s).unwrap()),
            account: Some("111122223333".into()),
            region: Some("us-east-1".into()),
        }
    }

    #[test]
    fn only_ended_or_failed_pipelines_of_sessions_are_looked_up() {
        assert_eq!(
            plan(&event(PipelineChange::Deleted, None)),
            Plan::Done(CaptureOutcome::Ignored(IgnoreReason::NotASession))
        );
        assert_eq!(
            plan(&event(PipelineChange::Other, Some("s"))),
            Plan::Done(CaptureOutcome::Ignored(IgnoreReason::OtherEvent))
        );
        assert_eq!(
            plan(&event(PipelineChange::TemporaryFailure, Some("s"))),
            Plan::Done(CaptureOutcome::TemporaryFailure)
        );
        assert!(matches!(
            plan(&event(PipelineChange::Deleted, Some("s"))),
            Plan::Inspect {
                change: PipelineChange::Deleted,
                ..
            }
        ));
    }

    #[test]
    fn the_pipeline_kind_decides_between_join_fail_and_ignore() {
        let capture = Lookup::Found(MediaPipelineKind::Capture(CapturePipeline {
            arn: "arn:c".into(),
            sink_arn: None,
            kms_key_id: None,
        }));
        let concat = Lookup::Found(MediaPipelineKind::Concatenation);
        let other = Lookup::Found(MediaPipelineKind::Other);
        use PipelineChange::{Deleted, PermanentFailure};
        assert_eq!(
            after_lookup(Deleted, &capture),
            Next::Join {
                arn: Some("arn:c".into()),
                fallback: false
            }
        );
        assert_eq!(
            after_lookup(Deleted, &concat),
            Next::Done(CaptureOutcome::Ignored(IgnoreReason::ConcatenationEnded))
        );
        assert_eq!(
            after_lookup(Deleted, &other),
            Next::Done(CaptureOutcome::Ignored(IgnoreReason::NotACapture))
        );
        assert_eq!(
            after_lookup(Deleted, &Lookup::Gone),
            Next::Join {
                arn: None,
                fallback: true
            }
        );
        for failed in [&capture, &concat, &Lookup::Gone] {
            assert_eq!(
                after_lookup(PermanentFailure, failed),
                Next::Fail(CaptureFailure::CaptureFailed)
            );
        }
        assert_eq!(
            after_lookup(PermanentFailure, &other),
            Next::Done(CaptureOutcome::Ignored(IgnoreReason::NotACapture))
        );
    }

    #[test]
    fn tokens_fit_the_api_and_follow_the_capture() {
        let token = concatenation_token("e40ee45e-2ed1-408e-9156-f52b8208a491");
        assert!((2..=64).contains(&token.len()));
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(
            token,
            concatenation_token("e40ee45e-2ed1-408e-9156-f52b8208a491")
        );
    }
}

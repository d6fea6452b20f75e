//! Amazon Chime SDK media capture: the `Chime Media Pipeline State Change` events the
//! `capture` stage reads, the layout a capture pipeline writes, and the events it and
//! `clinical` publish about captures and transcripts.
//!
//! A media capture pipeline writes a meeting into S3 as it happens, in chunks of up to
//! 5 seconds under `{sink prefix}/audio/` (plus `video/`, `meeting-events/`,
//! `data-channel/`, ... beside it); chunk names begin with their UTC start time
//! `YYYY-MM-DD-HH-MM-SS-mmm`, so name order is time order. telepipe asks platforms to use
//! the sink `{recordings bucket}/{capture prefix}{session_id}` and turns the chunks into
//! one recording once the capture ends.

use crate::ids::{digest_hex, SessionId};
use crate::pipeline::{redact_quoted, PipelineEvent, CHIME_SOURCE};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `detail-type` of Chime SDK media pipeline lifecycle events (source `aws.chime`).
pub const MEDIA_PIPELINE_DETAIL_TYPE: &str = "Chime Media Pipeline State Change";

/// The folder of a capture sink that holds the audio chunks.
pub const AUDIO_FOLDER: &str = "audio/";

/// What a media pipeline event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineChange {
    /// `chime:MediaPipelineDeleted`: the pipeline stopped successfully.
    Deleted,
    /// `chime:MediaPipelinePermanentFailure`: it will not recover; its output is incomplete.
    PermanentFailure,
    /// `chime:MediaPipelineTemporaryFailure`: it may still recover.
    TemporaryFailure,
    /// Any other event type (in progress, KVS stream start/end, ...).
    Other,
}

impl PipelineChange {
    fn parse(event_type: &str) -> Self {
        match event_type {
            "chime:MediaPipelineDeleted" => Self::Deleted,
            "chime:MediaPipelinePermanentFailure" => Self::PermanentFailure,
            "chime:MediaPipelineTemporaryFailure" => Self::TemporaryFailure,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::PermanentFailure => "permanent_failure",
            Self::TemporaryFailure => "temporary_failure",
            Self::Other => "other",
        }
    }
}

/// The fields of a `Chime Media Pipeline State Change` the capture stage uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPipelineEvent {
    pub change: PipelineChange,
    pub media_pipeline_id: String,
    /// The meeting's `externalMeetingId` as a telepipe session id; `None` when the event has
    /// none or it is not a valid session id (a meeting that is not a telepipe session, or a
    /// concatenation pipeline's own event, which has no meeting).
    pub session_id: Option<SessionId>,
    /// From the envelope: where the pipeline's ARN lives.
    pub account: Option<String>,
    pub region: Option<String>,
}

/// What a message on the capture queue turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureInput {
    MediaPipeline(MediaPipelineEvent),
    /// A well-formed EventBridge event of another source or type.
    Other {
        detail_type: String,
    },
}

/// A capture-queue message that cannot be read; the text names fields, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureParseError(pub String);

impl std::fmt::Display for CaptureParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaptureParseError {}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    detail: serde_json::Value,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "eventType")]
    event_type: String,
    #[serde(rename = "mediaPipelineId")]
    media_pipeline_id: String,
    #[serde(rename = "externalMeetingId", default)]
    external_meeting_id: Option<String>,
}

/// Chime pipeline ids are UUIDs (36 characters); anything else is refused before it is
/// put into an ARN or an idempotency token.
fn valid_pipeline_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Parses a capture-queue message (an EventBridge envelope).
pub fn parse_capture_message(body: &str) -> Result<CaptureInput, CaptureParseError> {
    let envelope: Envelope = serde_json::from_str(body).map_err(|err| {
        CaptureParseError(format!(
            "not an EventBridge event: {}",
            redact_quoted(&err.to_string())
        ))
    })?;
    if envelope.source != CHIME_SOURCE || envelope.detail_type != MEDIA_PIPELINE_DETAIL_TYPE {
        return Ok(CaptureInput::Other {
            detail_type: envelope.detail_type,
        });
    }
    let detail: Detail = serde_json::from_value(envelope.detail).map_err(|err| {
        CaptureParseError(format!(
            "{MEDIA_PIPELINE_DETAIL_TYPE} detail: {}",
            redact_quoted(&err.to_string())
        ))
    })?;
    if !valid_pipeline_id(&detail.media_pipeline_id) {
        return Err(CaptureParseError(
            "mediaPipelineId is not a 36-character pipeline id".into(),
        ));
    }
    Ok(CaptureInput::MediaPipeline(MediaPipelineEvent {
        change: PipelineChange::parse(&detail.event_type),
        media_pipeline_id: detail.media_pipeline_id,
        session_id: detail
            .external_meeting_id
            .as_deref()
            .and_then(|id| SessionId::parse(id).ok()),
        account: envelope.account.filter(|a| !a.is_empty()),
        region: envelope.region.filter(|r| !r.is_empty()),
    }))
}

/// Whether an object name inside a capture's `audio/` folder is an audio chunk telepipe
/// concatenates: a media file, not a folder marker or a text artifact.
pub fn is_audio_chunk(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.contains('/')
        && [
            ".mp4", ".m4a", ".aac", ".wav", ".ogg", ".webm", ".mp3", ".flac",
        ]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// Why a capture yields no recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptureFailure {
    /// The capture (or its concatenation) pipeline failed permanently.
    CaptureFailed,
    /// The capture ended with no audio chunk (or none that could be read).
    CaptureEmpty,
}

impl CaptureFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CaptureFailed => "capture_failed",
            Self::CaptureEmpty => "capture_empty",
        }
    }
}

/// A session's meeting capture will not become a recording. The sessions stage treats it
/// like a recording that never arrived (`Recording Missing`, once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordingCaptureFailed {
    pub schema_version: u32,
    pub event_id: String,
    pub session_id: String,
    /// The Chime media pipeline that failed or ended empty.
    pub media_pipeline_id: String,
    pub reason: CaptureFailure,
}

impl RecordingCaptureFailed {
    pub fn new(session_id: &str, media_pipeline_id: &str, reason: CaptureFailure) -> Self {
        Self {
            schema_version: crate::SCHEMA_VERSION,
            event_id: digest_hex(
                &[
                    Self::DETAIL_TYPE.as_bytes(),
                    session_id.as_bytes(),
                    media_pipeline_id.as_bytes(),
                    reason.as_str().as_bytes(),
                ],
                16,
            ),
            session_id: session_id.to_owned(),
            media_pipeline_id: media_pipeline_id.to_owned(),
            reason,
        }
    }
}

impl PipelineEvent for RecordingCaptureFailed {
    const DETAIL_TYPE: &'static str = "Recording Capture Failed";
    const SCHEMA_NAME: &'static str = "recording-capture-failed";
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn session_id(&self) -> Option<&str> {
        Some(&self.session_id)
    }
}

/// A transcript landed in the transcripts bucket (ids and URI only, never text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptReady {
    pub schema_version: u32,
    pub event_id: String,
    pub session_id: String,
    pub job_name: String,
    /// `s3://` URI of the transcript.
    pub transcript_uri: String,
    /// Follows one recording from upload to notification; for logs and tracing only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl TranscriptReady {
    pub fn new(
        session_id: &str,
        job_name: &str,
        transcript_uri: &str,
        correlation_id: Option<String>,
    ) -> Self {
        Self {
            schema_version: crate::SCHEMA_VERSION,
            event_id: digest_hex(
                &[
                    Self::DETAIL_TYPE.as_bytes(),
                    job_name.as_bytes(),
                    transcript_uri.as_bytes(),
                ],
                16,
            ),
            session_id: session_id.to_owned(),
            job_name: job_name.to_owned(),
            transcript_uri: transcript_uri.to_owned(),
            correlation_id,
        }
    }
}

impl PipelineEvent for TranscriptReady {
    const DETAIL_TYPE: &'static str = "Transcript Ready";
    const SCHEMA_NAME: &'static str = "transcript-ready";
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn session_id(&self) -> Option<&str> {
        Some(&self.session_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(detail: serde_json::Value) -> String {
        serde_json::json!({
            "version": "0", "id": "e1", "detail-type": MEDIA_PIPELINE_DETAIL_TYPE,
            "source": "aws.chime", "account": "111122223333", "region": "us-east-1",
            "resources": [], "detail": detail,
        })
        .to_string()
    }

    const PIPELINE: &str = "e40ee45e-2ed1-408e-9156-f52b8208a491";

    #[test]
    fn a_deleted_capture_names_its_session_and_pipeline() {
        let body = envelope(serde_json::json!({
            "version": "0", "eventType": "chime:MediaPipelineDeleted", "timestamp": 1627503710485u64,
            "meetingId": "1e6bf4f5-f4b5-4917-b8c9-bda45c340706", "externalMeetingId": "visit-42",
            "mediaPipelineId": PIPELINE, "mediaRegion": "us-east-1",
        }));
        let CaptureInput::MediaPipeline(event) = parse_capture_message(&body).unwrap() else {
            panic!("not a pipeline event")
        };
        assert_eq!(event.change, PipelineChange::Deleted);
        assert_eq!(event.media_pipeline_id, PIPELINE);
        assert_eq!(event.session_id.unwrap().as_str(), "visit-42");
        assert_eq!(event.account.as_deref(), Some("111122223333"));
    }

    #[test]
    fn meetings_that_are_not_sessions_parse_without_a_session() {
        for meeting in [
            serde_json::json!("not a session id!"),
            serde_json::json!(""),
        ] {
            let body = envelope(serde_json::json!({
                "eventType": "chime:MediaPipelineDeleted", "mediaPipelineId": PIPELINE,
                "externalMeetingId": meeting,
            }));
            let CaptureInput::MediaPipeline(event) = parse_capture_message(&body).unwrap() else {
                panic!()
            };
            assert_eq!(event.session_id, None);
        }
        let body = envelope(serde_json::json!({
            "eventType": "chime:MediaPipelineDeleted", "mediaPipelineId": PIPELINE,
        }));
        let CaptureInput::MediaPipeline(event) = parse_capture_message(&body).unwrap() else {
            panic!()
        };
        assert_eq!(event.session_id, None);
    }

    #[test]
    fn malformed_events_say_what_is_wrong_without_values() {
        let err = parse_capture_message("{").unwrap_err();
        assert!(err.0.starts_with("not an EventBridge event"), "{err}");
        let bad_id = envelope(serde_json::json!({
            "eventType": "chime:MediaPipelineDeleted", "mediaPipelineId": "../../x",
        }));
        assert!(parse_capture_message(&bad_id).is_err());
        let number = envelope(serde_json::json!({
            "eventType": "chime:MediaPipelineDeleted", "mediaPipelineId": PIPELINE,
            "externalMeetingId": 15551234567u64,
        }));
        let err = parse_capture_message(&number).unwrap_err();
        assert!(!err.0.contains("15551234567"), "{err}");
        let other = serde_json::json!({"detail-type": "Chime Meeting State Change", "source": "aws.chime", "detail": {}});
        assert_eq!(
            parse_capture_message(&other.to_string()).unwrap(),
            CaptureInput::Other {
                detail_type: "Chime Meeting State Change".into()
            }
        );
    }

    #[test]
    fn audio_chunks_are_media_files_directly_in_the_folder() {
        assert!(is_audio_chunk("2026-12-01-15-00-00-000.mp4"));
        assert!(is_audio_chunk("2026-12-01-15-00-05-000-abc.MP4"));
        assert!(!is_audio_chunk("2026-12-01-15-00-00-000.txt"));
        assert!(!is_audio_chunk("sub/2026.mp4"));
    }

    #[test]
    fn event_ids_are_stable_per_input() {
        let a = RecordingCaptureFailed::new("s", PIPELINE, CaptureFailure::CaptureEmpty);
        assert_eq!(
            a,
            RecordingCaptureFailed::new("s", PIPELINE, CaptureFailure::CaptureEmpty)
        );
        assert_ne!(
            a.event_id,
            RecordingCaptureFailed::new("s", PIPELINE, CaptureFailure::CaptureFailed).event_id
        );
    }
}

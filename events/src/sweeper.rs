//! Events the `sweeper` publishes about recordings that went wrong or went quiet:
//! `Transcription Failed` (a Transcribe Medical job ended FAILED, retried or parked) and
//! `Stage Stalled` (a recording has sat in one state past its deadline).
//!
//! Same conventions as `pipeline`: ids, counts and reason codes only (Transcribe's own
//! failure text can quote the media URI, so only a code derived from it is published),
//! `schema_version`, and an `event_id` derived from the inputs so a second sweep over
//! the same situation republishes an event consumers can drop.

use crate::ids::digest_hex;
use crate::pipeline::PipelineEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A transcription job ended FAILED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptionFailed {
    pub schema_version: u32,
    /// Derived from the failed job's name: one failed job, one id.
    pub event_id: String,
    pub session_id: String,
    /// The job that failed (`{job}` for attempt 1, `{job}-a{n}` for attempt n).
    pub job_name: String,
    /// Which attempt failed, from 1.
    pub attempt: u32,
    /// Stable code for Transcribe's failure reason (`internal_failure`, `throttled`,
    /// `service_unavailable`, `unsupported_media`, `invalid_media`, `media_missing`,
    /// `access_denied`, `unclassified`, ...).
    pub reason: String,
    /// Whether the reason is transient (a retry may succeed).
    pub transient: bool,
    /// True when the sweeper started another attempt; false when the recording is parked.
    pub will_retry: bool,
    /// The next attempt's job name when `will_retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_job_name: Option<String>,
}

impl TranscriptionFailed {
    pub fn id_for(job_name: &str) -> String {
        digest_hex(&[Self::DETAIL_TYPE.as_bytes(), job_name.as_bytes()], 16)
    }
}

impl PipelineEvent for TranscriptionFailed {
    const DETAIL_TYPE: &'static str = "Transcription Failed";
    const SCHEMA_NAME: &'static str = "transcription-failed";
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn session_id(&self) -> Option<&str> {
        Some(&self.session_id)
    }
}

/// A recording sat in one state longer than that state's deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StageStalled {
    pub schema_version: u32,
    /// Derived from the recording, attempt, state and when it was entered: one stall, one id.
    pub event_id: String,
    pub session_id: String,
    /// The recording: its base job name, or its object reference when no job was derived.
    pub recording: String,
    /// The state it is stuck in: `received`, `transcribing`, `transcribed` or `extracting`.
    pub stage: String,
    pub attempt: u32,
    /// The job of that attempt, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Transcribe's job status when the stage is `transcribing` (`QUEUED`, `IN_PROGRESS`, `NOT_FOUND`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<String>,
    /// Whole minutes since the state was entered.
    pub minutes_stuck: u64,
    /// The configured deadline of that state, in minutes.
    pub deadline_minutes: u64,
}

impl StageStalled {
    pub fn id_for(recording: &str, stage: &str, attempt: u32, entered_at_ms: i64) -> String {
        digest_hex(
            &[
                Self::DETAIL_TYPE.as_bytes(),
                recording.as_bytes(),
                stage.as_bytes(),
                &attempt.to_be_bytes(),
                &entered_at_ms.to_be_bytes(),
            ],
            16,
        )
    }
}

impl PipelineEvent for StageStalled {
    const DETAIL_TYPE: &'static str = "Stage Stalled";
    const SCHEMA_NAME: &'static str = "stage-stalled";
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn session_id(&self) -> Option<&str> {
        Some(&self.session_id)
    }
}

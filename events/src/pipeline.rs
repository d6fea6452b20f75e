//! Events telepipe publishes on its EventBridge bus (source `telepipe`).
//!
//! Details carry ids, counts, reasons and URIs built from ids: never object keys
//! (file names may name a patient), transcript text or entity text. Every detail has a
//! stable `event_id` derived from its inputs, so a redelivered message republishes an
//! event consumers can recognise as already seen.

use crate::ids::digest_hex;
use crate::SCHEMA_VERSION;
use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default `source` of pipeline events.
pub const DEFAULT_SOURCE: &str = "telepipe";

/// An event detail type with its EventBridge `detail-type`.
pub trait PipelineEvent: Serialize + DeserializeOwned + JsonSchema {
    const DETAIL_TYPE: &'static str;
    /// File stem of its schema and example under `schemas/`.
    const SCHEMA_NAME: &'static str;
    fn event_id(&self) -> &str;
    fn session_id(&self) -> Option<&str>;
}

/// Where a recording object is, without its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordingRef {
    pub bucket: String,
    /// Short digest of bucket and key; the key itself may hold a patient's name.
    pub object_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// A Transcribe Medical job was started for a recording (or had been already).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptionStarted {
    pub schema_version: u32,
    pub event_id: String,
    pub session_id: String,
    pub job_name: String,
    pub recording: RecordingRef,
    /// Transcribe `MediaFormat` (mp3, mp4, wav, flac, ogg, amr, webm, m4a).
    pub media_format: String,
    /// `s3://` URI the transcript will be written to.
    pub transcript_uri: String,
    /// True when Transcribe answered that the job existed (a redelivery).
    pub already_started: bool,
    /// Follows one recording from upload to notification (the 24-hex digest that ends
    /// its job name, or the id a replayed message carried); for logs and tracing only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl TranscriptionStarted {
    /// Same job, same id: a redelivery publishes an event consumers can drop.
    pub fn id_for(job_name: &str) -> String {
        digest_hex(&[Self::DETAIL_TYPE.as_bytes(), job_name.as_bytes()], 16)
    }
}

impl PipelineEvent for TranscriptionStarted {
    const DETAIL_TYPE: &'static str = "Transcription Started";
    const SCHEMA_NAME: &'static str = "transcription-started";
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn session_id(&self) -> Option<&str> {
        Some(&self.session_id)
    }
}

/// Machine-readable reasons a recording is refused. All are permanent: retrying cannot help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The key does not decode (bad escapes, control characters, too long).
    InvalidKey,
    /// The key is not `{prefix}{session_id}/{file}`.
    OutsidePrefix,
    /// The session id segment is not 1–128 of letters, digits, `.`, `_`, `-`.
    InvalidSessionId,
    /// The object is gone (deleted after upload, or never existed).
    ObjectMissing,
    EmptyObject,
    /// Larger than the configured limit (Transcribe's cap by default).
    TooLarge,
    /// The extension names no format Transcribe Medical accepts.
    UnsupportedFormat,
    /// The leading bytes are not the format the extension names (e.g. a renamed text file).
    FormatMismatch,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidKey => "invalid_key",
            Self::OutsidePrefix => "outside_prefix",
            Self::InvalidSessionId => "invalid_session_id",
            Self::ObjectMissing => "object_missing",
            Self::EmptyObject => "empty_object",
            Self::TooLarge => "too_large",
            Self::UnsupportedFormat => "unsupported_format",
            Self::FormatMismatch => "format_mismatch",
        }
    }
}

/// A recording was refused; its message is dead-lettered with the same reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordingRejected {
    pub schema_version: u32,
    pub event_id: String,
    /// Absent when the key yields no valid session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub reason: RejectReason,
    pub recording: RecordingRef,
    /// Follows one recording from upload to notification (absent when the key
    /// could not be read); for logs and tracing only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl RecordingRejected {
    pub fn id_for(recording: &RecordingRef, reason: RejectReason) -> String {
        digest_hex(
            &[
                Self::DETAIL_TYPE.as_bytes(),
                recording.object_ref.as_bytes(),
                recording.version_id.as_deref().unwrap_or("").as_bytes(),
                reason.as_str().as_bytes(),
            ],
            16,
        )
    }
}

impl PipelineEvent for RecordingRejected {
    const DETAIL_TYPE: &'static str = "Recording Rejected";
    const SCHEMA_NAME: &'static str = "recording-rejected";
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
}

/// Requests sent per Comprehend Medical API (or offline equivalent) for one transcript.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestCounts {
    pub detect_entities_v2: u32,
    pub infer_icd10cm: u32,
    pub infer_rxnorm: u32,
}

/// Clinical entities were extracted from a transcript and the results document written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClinicalEntitiesExtracted {
    pub schema_version: u32,
    /// Digest of the results document: reprocessing to the same document republishes the same id.
    pub event_id: String,
    pub session_id: String,
    pub job_name: String,
    /// `s3://` URI of the results document.
    pub results_uri: String,
    /// Entities per Comprehend Medical category (DetectEntitiesV2).
    pub entities_by_category: BTreeMap<String, u32>,
    pub icd10cm_concepts: u32,
    pub rxnorm_concepts: u32,
    pub turns: u32,
    pub speakers: u32,
    pub duration_ms: u64,
    pub requests: RequestCounts,
    /// Follows one recording from upload to notification (the 24-hex digest that ends
    /// its job name, or the id a replayed message carried); for logs and tracing only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl PipelineEvent for ClinicalEntitiesExtracted {
    const DETAIL_TYPE: &'static str = "Clinical Entities Extracted";
    const SCHEMA_NAME: &'static str = "clinical-entities-extracted";
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn session_id(&self) -> Option<&str> {
        Some(&self.session_id)
    }
}

/// Builds the `schema_version` field; a function so call sites never hard-code it.
pub fn schema_version() -> u32 {
    SCHEMA_VERSION
}

/// `source` and `detail-type` of Amazon Chime SDK meeting events.
pub const CHIME_SOURCE: &str = "aws.chime";

/// serde quotes offending string values (`invalid type: string "+1 555…"`) and puts
/// other values in backticks (`invalid type: integer `15551234567``, `unknown variant
/// `x``): those may be addresses, so they are cut out. Field names (`missing field
/// `start``) and the expected names after `expected` stay: they come from our types.
pub fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_string = false;
    let mut in_backticks: Option<bool> = None; // Some(keep) while inside backticks
    for c in message.chars() {
        match (c, in_string, in_backticks) {
            ('"', _, None) => {
                if !in_string {
                    out.push_str("\"<redacted>\"");
                }
                in_string = !in_string;
            }
            (_, true, _) => {}
            ('`', false, None) => {
                let keep = out.ends_with("field ") || out.contains("expected");
                out.push('`');
                if !keep {
                    out.push_str("<redacted>");
                }
                in_backticks = Some(keep);
            }
            ('`', false, Some(_)) => {
                out.push('`');
                in_backticks = None;
            }
            (_, false, Some(false)) => {}
            _ => out.push(c),
        }
    }
    out
}

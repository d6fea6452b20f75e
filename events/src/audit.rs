//! The audit trail's entry: who did what to which session, when, with object references
//! (digests, job names, pipeline and intent ids) and reason codes — never PHI: no object
//! key, address, name, transcript or entity text.
//!
//! Entries are facts about processing (a recording received, rejected, transcribed,
//! its entities extracted) and operator actions (replay, reprocess, forget). Each has a
//! stable `entry_id` derived from what it records (not when), so an at-least-once redelivery
//! appends nothing new. Stores keep them for years and never change them: on AWS an S3
//! bucket under Object Lock (compliance mode), locally an append-only table where each
//! entry carries the digest of the one before ([`chain_digest`]), so an edited, removed
//! or reordered entry breaks the chain.

use crate::ids::digest_hex;
use serde::{Deserialize, Serialize};

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    RecordingReceived,
    RecordingRejected,
    TranscriptionStarted,
    TranscriptionFinished,
    ExtractionStarted,
    EntitiesExtracted,
    ProcessingFailed,
    ProcessingStalled,
    /// A Chime capture was joined into one recording.
    CaptureJoined,
    /// Results were read through telepipe's own tools.
    ResultsRead,
    DeadLetterReplayed,
    Reprocessed,
    ForgetStarted,
    ForgetCompleted,
    /// A number opted out of SMS (STOP).
    OptedOut,
    /// A number opted back in (START).
    OptedIn,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecordingReceived => "recording_received",
            Self::RecordingRejected => "recording_rejected",
            Self::TranscriptionStarted => "transcription_started",
            Self::TranscriptionFinished => "transcription_finished",
            Self::ExtractionStarted => "extraction_started",
            Self::EntitiesExtracted => "entities_extracted",
            Self::ProcessingFailed => "processing_failed",
            Self::ProcessingStalled => "processing_stalled",
            Self::CaptureJoined => "capture_joined",
            Self::ResultsRead => "results_read",
            Self::DeadLetterReplayed => "dead_letter_replayed",
            Self::Reprocessed => "reprocessed",
            Self::ForgetStarted => "forget_started",
            Self::ForgetCompleted => "forget_completed",
            Self::OptedOut => "opted_out",
            Self::OptedIn => "opted_in",
        }
    }
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub schema_version: u32,
    /// Digest of actor, action, session and references: one fact, one id.
    pub entry_id: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who: `lambda:{function}`, `local`, or `operator:{name}`.
    pub actor: String,
    pub action: AuditAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Ids the action concerns: recording (job base name or object digest), attempt, job
    /// name, object digest, pipeline id, dead-letter message id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    /// A reason code (`too_large`, `unsupported_format`, ...), never free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl AuditEntry {
    pub fn new(
        actor: &str,
        action: AuditAction,
        session_id: Option<&str>,
        refs: Vec<String>,
        at_ms: i64,
    ) -> Self {
        let mut parts: Vec<&[u8]> = vec![
            actor.as_bytes(),
            action.as_str().as_bytes(),
            session_id.unwrap_or("").as_bytes(),
        ];
        parts.extend(refs.iter().map(|r| r.as_bytes()));
        Self {
            schema_version: crate::SCHEMA_VERSION,
            entry_id: digest_hex(&parts, 16),
            at_ms,
            actor: actor.to_owned(),
            action,
            session_id: session_id.map(str::to_owned),
            refs,
            reason: None,
        }
    }

    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// The entry as stored: compact JSON with fields in a fixed order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("audit entries serialize")
    }

    /// Where the entry lives in the audit bucket: `audit/{session or _}/{entry_id}.json`.
    /// A redelivered fact writes the same key (a new version, also retained).
    pub fn object_key(&self) -> String {
        format!(
            "audit/{}/{}.json",
            self.session_id.as_deref().unwrap_or("_"),
            self.entry_id
        )
    }
}

/// The digest an entry carries in a hash chain: SHA-256 over the previous entry's digest
/// (empty for the first) and this entry's stored JSON.
pub fn chain_digest(previous: &str, entry_json: &str) -> String {
    digest_hex(&[previous.as_bytes(), entry_json.as_bytes()], 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fact_one_id_whenever_it_is_recorded() {
        let a = AuditEntry::new(
            "local",
            AuditAction::RecordingReceived,
            Some("s-1"),
            vec!["s-1-abc".into()],
            1,
        );
        let b = AuditEntry::new(
            "local",
            AuditAction::RecordingReceived,
            Some("s-1"),
            vec!["s-1-abc".into()],
            99,
        );
        assert_eq!(a.entry_id, b.entry_id);
        assert_eq!(a.object_key(), format!("audit/s-1/{}.json", a.entry_id));
        let other = AuditEntry::new(
            "local",
            AuditAction::TranscriptionStarted,
            Some("s-1"),
            vec!["s-1-abc".into()],
            1,
        );
        assert_ne!(a.entry_id, other.entry_id);
        let parsed: AuditEntry = serde_json::from_str(&a.to_json()).unwrap();
        assert_eq!(parsed, a);
    }

    #[test]
    fn the_chain_digest_depends_on_the_previous_digest_and_the_entry() {
        let first = chain_digest("", "{\"a\":1}");
        assert_eq!(first.len(), 64);
        assert_ne!(
            chain_digest(&first, "{\"a\":2}"),
            chain_digest("", "{\"a\":2}")
        );
        assert_ne!(
            chain_digest(&first, "{\"a\":2}"),
            chain_digest(&first, "{\"a\":3}")
        );
    }
}

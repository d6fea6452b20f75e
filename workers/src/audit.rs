//! Feeding the audit trail from what the stages already record: every new status
//! transition (received, rejected, transcribing, transcribed, extracting, extracted,
//! failed, stalled) is a processing fact, so [`AuditedStatus`] wraps any `StatusStore`
//! and appends the matching audit entry before the transition is stored. The stages stay
//! as they are; the wiring (Lambda mains, the local runtime) decides where entries go.
//!
//! The entry is appended first: a crash in between leaves an audit entry whose status
//! write the redelivery makes, never a status without its audit entry. Entry ids are
//! derived from the fact, so the redelivery's append is the same entry.

use crate::error::PortError;
use crate::ports::AuditLog;
use crate::status::{Deadlines, RecordingStatus, State, StatusStore, Transition};
use telepipe_events::audit::{AuditAction, AuditEntry};

/// The audit action a status transition records.
pub fn action_of(state: State) -> AuditAction {
    match state {
        State::Received => AuditAction::RecordingReceived,
        State::Rejected => AuditAction::RecordingRejected,
        State::Transcribing => AuditAction::TranscriptionStarted,
        State::Transcribed => AuditAction::TranscriptionFinished,
        State::Extracting => AuditAction::ExtractionStarted,
        State::Extracted => AuditAction::EntitiesExtracted,
        State::Failed => AuditAction::ProcessingFailed,
        State::Stalled => AuditAction::ProcessingStalled,
    }
}

/// The audit entry of a transition: ids and the reason code only.
pub fn entry_of(actor: &str, transition: &Transition) -> AuditEntry {
    let mut refs = vec![
        transition.recording.clone(),
        format!("attempt:{}", transition.attempt),
    ];
    refs.extend(transition.job_name.iter().cloned());
    refs.extend(transition.object_ref.iter().cloned());
    let entry = AuditEntry::new(
        actor,
        action_of(transition.state),
        Some(transition.session_id.as_str()),
        refs,
        transition.at_ms,
    );
    match &transition.reason {
        Some(reason) => entry.with_reason(reason),
        None => entry,
    }
}

/// A `StatusStore` that appends an audit entry for each transition it records.
pub struct AuditedStatus<'a, St, A> {
    pub inner: &'a St,
    /// `None`: auditing is off (no audit store configured); the status is still recorded.
    pub audit: Option<&'a A>,
    /// Who acts: `lambda:{function name}` or `local`.
    pub actor: &'a str,
}

impl<St: StatusStore, A: AuditLog> StatusStore for AuditedStatus<'_, St, A> {
    async fn record(&self, transition: &Transition) -> Result<bool, PortError> {
        if let Some(audit) = self.audit {
            audit.append(&entry_of(self.actor, transition)).await?;
        }
        self.inner.record(transition).await
    }

    async fn timeline(&self, session_id: &str) -> Result<Vec<Transition>, PortError> {
        self.inner.timeline(session_id).await
    }

    async fn stuck(
        &self,
        now_ms: i64,
        deadlines: &Deadlines,
    ) -> Result<Vec<RecordingStatus>, PortError> {
        self.inner.stuck(now_ms, deadlines).await
    }

    async fn query(
        &self,
        since_ms: i64,
        state: Option<State>,
    ) -> Result<Vec<Transition>, PortError> {
        self.inner.query(since_ms, state).await
    }
}

/// The actor name of a Lambda function (its name from the runtime), or of the local runtime.
pub fn lambda_actor() -> String {
    match std::env::var("AWS_LAMBDA_FUNCTION_NAME") {
        Ok(name) if !name.is_empty() => format!("lambda:{name}"),
        _ => "lambda".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryAudit, MemoryStatus};

    #[tokio::test]
    async fn each_new_transition_is_audited_once_with_ids_only() {
        let (status, audit) = (MemoryStatus::default(), MemoryAudit::default());
        let audited = AuditedStatus {
            inner: &status,
            audit: Some(&audit),
            actor: "lambda:intake",
        };
        let t = Transition::new("s-1", "s-1-abc", 1, State::Rejected, 5)
            .object("obj-1234")
            .failure("permanent", "too_large");
        assert!(audited.record(&t).await.unwrap());
        assert!(!audited.record(&t).await.unwrap(), "redelivery");
        let entries = audit.entries();
        assert_eq!(entries.len(), 1, "one fact, one entry");
        let entry = &entries[0];
        assert_eq!(entry.action, AuditAction::RecordingRejected);
        assert_eq!(entry.session_id.as_deref(), Some("s-1"));
        assert_eq!(entry.reason.as_deref(), Some("too_large"));
        assert!(entry.refs.contains(&"obj-1234".to_owned()));
        assert_eq!(status.all().len(), 1);
    }

    #[tokio::test]
    async fn an_audit_failure_stops_the_status_write() {
        let (status, audit) = (MemoryStatus::default(), MemoryAudit::default());
        audit
            .failures
            .push(Some(crate::error::PortErrorKind::Unavailable));
        let audited = AuditedStatus {
            inner: &status,
            audit: Some(&audit),
            actor: "local",
        };
        let t = Transition::new("s-1", "r", 1, State::Received, 5);
        assert!(audited.record(&t).await.is_err());
        assert!(status.all().is_empty(), "no status without its audit entry");
    }
}

//! `telepipe forget` and `telepipe reprocess`: the `SessionData` port (everything the
//! deployment keeps about one session, store by store), the PHI-free audit entry, and the
//! two algorithms as plain async functions over the port. Adapters: the local runtime's
//! (`telepipe_local::forget`) and AWS (`crate::aws_session`, feature `aws`).
//!
//! **Forget** is resumable: an audit entry in state `started` is written before anything
//! is deleted; each store is then emptied (deleting what is already gone is fine) and the
//! counts are added to the entry after each store; the entry becomes `completed` only when
//! a final inventory finds nothing left. A rerun after a crash picks the `started` entry up
//! and finishes it.
//!
//! What is printed names items by opaque ids (session, job, intent, schedule names) or by
//! `telepipe_events::ids::object_ref` digests, never by object keys or contents.

use std::collections::BTreeMap;
use std::future::Future;
use telepipe_workers::clock::now_ms;
use telepipe_workers::error::PortError;

/// Where something about a session is kept. The order is the deletion order: what could
/// still send or start something goes first, what the outbox needs (intent ids) before the
/// intents, the recording last (while it exists, reprocessing stays possible).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Store {
    /// Pending one-time schedules (EventBridge Scheduler) or local timers.
    Schedules,
    /// Messages about the session waiting on queues (locally; SQS cannot delete selectively).
    QueuedMessages,
    /// Messages "sent" by the local outbox.
    Outbox,
    /// Notification intents (idempotency records).
    Intents,
    /// The session state document.
    SessionState,
    /// Per-recording status transitions and current states.
    Status,
    /// Local history: published events and transcription job rows of the session.
    History,
    /// Results documents.
    Results,
    /// Transcripts.
    Transcripts,
    /// Recordings (every version on a versioned bucket).
    Recordings,
}

impl Store {
    pub const ALL: [Store; 10] = [
        Store::Schedules,
        Store::QueuedMessages,
        Store::Outbox,
        Store::Intents,
        Store::SessionState,
        Store::Status,
        Store::History,
        Store::Results,
        Store::Transcripts,
        Store::Recordings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Store::Schedules => "schedules",
            Store::QueuedMessages => "queued_messages",
            Store::Outbox => "outbox",
            Store::Intents => "intents",
            Store::SessionState => "session_state",
            Store::Status => "status",
            Store::History => "history",
            Store::Results => "results",
            Store::Transcripts => "transcripts",
            Store::Recordings => "recordings",
        }
    }
}

/// One thing to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub store: Store,
    /// Safe to print: an id, a schedule name, an object reference digest (with a version
    /// digest on versioned buckets).
    pub label: String,
    /// What the adapter needs to delete it (may hold an object key): never printed.
    pub handle: String,
}

/// An object of the session (recording or transcript), for reprocessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionObject {
    pub bucket: String,
    /// Never printed.
    pub key: String,
    pub size: u64,
    pub version_id: Option<String>,
}

impl SessionObject {
    /// The printable reference of the object.
    pub fn object_ref(&self) -> String {
        telepipe_events::ids::object_ref(&self.bucket, &self.key)
    }
}

/// Which stage `reprocess` re-feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Transcription,
    Clinical,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Transcription => "transcription",
            Stage::Clinical => "clinical",
        }
    }
}

/// The audit record of one `forget`: who, when, what (counts per store). No PHI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// `{started_at RFC 3339}#{session_id}`: unique, sorts by time.
    pub id: String,
    pub action: String,
    pub session_id: String,
    /// `started` or `completed`.
    pub state: String,
    pub started_at: String,
    pub completed_at: Option<String>,
    /// The operator: the AWS caller or `$USER`.
    pub by: String,
    /// The stores this forget empties, in order.
    pub steps: Vec<String>,
    /// The stores already emptied.
    pub done: Vec<String>,
    /// Items deleted per store (summed over reruns).
    pub deleted: BTreeMap<String, u64>,
    /// Runs that worked on this entry (1 + resumptions).
    pub runs: u32,
}

/// The audit-trail entry of a forget's record: who, which session, started or completed,
/// and how many items each store lost (counts, never contents).
pub fn trail_entry(entry: &AuditEntry) -> telepipe_events::audit::AuditEntry {
    use telepipe_events::audit::AuditAction;
    let action = if entry.is_completed() {
        AuditAction::ForgetCompleted
    } else {
        AuditAction::ForgetStarted
    };
    let mut refs = vec![format!("forget:{}", entry.id)];
    if entry.is_completed() {
        refs.extend(
            entry
                .deleted
                .iter()
                .map(|(store, n)| format!("{store}:{n}")),
        );
    }
    let at = entry
        .completed_at
        .as_deref()
        .unwrap_or(&entry.started_at)
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .unwrap_or_default();
    telepipe_events::audit::AuditEntry::new(
        &format!("operator:{}", entry.by),
        action,
        Some(&entry.session_id),
        refs,
        at,
    )
}

impl AuditEntry {
    pub const STARTED: &'static str = "started";
    pub const COMPLETED: &'static str = "completed";

    pub fn is_completed(&self) -> bool {
        self.state == Self::COMPLETED
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("audit entries serialize")
    }
}

/// What `forget` and `reprocess` need from a deployment.
pub trait SessionData: Send + Sync {
    /// Where this is (`local DIR` or `aws`), for messages.
    fn describe(&self) -> String;

    /// Who runs the command (AWS caller ARN or `$USER`).
    fn operator(&self) -> impl Future<Output = String> + Send;

    /// Everything kept about the session in `store`.
    fn inventory(
        &self,
        session_id: &str,
        store: Store,
    ) -> impl Future<Output = Result<Vec<Item>, PortError>> + Send;

    /// Deletes one item; an item already gone is not an error.
    fn delete(&self, item: &Item) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Writes (creates or replaces) an audit entry.
    fn write_audit(&self, entry: &AuditEntry)
        -> impl Future<Output = Result<(), PortError>> + Send;

    /// The session's latest `forget` audit entry still `started`, if any.
    fn unfinished_audit(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<Option<AuditEntry>, PortError>> + Send;

    /// The session's current recording objects (`from` = transcription) or transcript
    /// objects (`from` = clinical).
    fn objects(
        &self,
        session_id: &str,
        from: Stage,
    ) -> impl Future<Output = Result<Vec<SessionObject>, PortError>> + Send;

    /// The highest attempt the status store knows for any recording of the session (0: none).
    fn last_attempt(&self, session_id: &str)
        -> impl Future<Output = Result<u32, PortError>> + Send;

    /// Sends a notification body to the stage's queue (intake or clinical).
    fn send(&self, to: Stage, body: &str) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Appends to the deployment's audit trail (locally the hash-chained table, on AWS the
    /// Object Lock bucket when configured).
    fn append_trail(
        &self,
        entry: &telepipe_events::audit::AuditEntry,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// What a forget found or did, per store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetReport {
    /// Items found per store (the plan on a dry run).
    pub found: BTreeMap<Store, Vec<String>>,
    /// The audit entry written (none on a dry run).
    pub audit: Option<AuditEntry>,
    /// True when an unfinished earlier forget was resumed.
    pub resumed: bool,
}

/// Why a forget stopped; the audit entry stays `started` and a rerun finishes the job.
#[derive(Debug)]
pub struct ForgetFailure {
    pub store: Option<Store>,
    pub error: PortError,
    pub report: ForgetReport,
}

impl std::fmt::Display for ForgetFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(audit) = &self.report.audit else {
            return write!(
                f,
                "forget did not start, nothing was deleted: {}",
                self.error
            );
        };
        write!(
            f,
            "forget stopped{}: {}; what was deleted so far is in the audit entry {} (state started): re-run `telepipe forget --session {}` to finish",
            self.store
                .map(|s| format!(" at {}", s.as_str()))
                .unwrap_or_default(),
            self.error,
            audit.id,
            audit.session_id
        )
    }
}

/// The current time in RFC 3339 (UTC, milliseconds).
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

async fn inventory_all<D: SessionData>(
    data: &D,
    session_id: &str,
) -> Result<Vec<(Store, Vec<Item>)>, (Store, PortError)> {
    let mut all = Vec::new();
    for store in Store::ALL {
        let items = data
            .inventory(session_id, store)
            .await
            .map_err(|e| (store, e))?;
        all.push((store, items));
    }
    Ok(all)
}

/// Deletes everything kept about `session_id` (or, with `dry_run`, only finds it), with
/// an audit entry written first and completed last. See the module docs.
pub async fn forget<D: SessionData>(
    data: &D,
    session_id: &str,
    dry_run: bool,
) -> Result<ForgetReport, ForgetFailure> {
    let mut report = ForgetReport::default();
    let fail = |store: Option<Store>, error: PortError, report: &ForgetReport| ForgetFailure {
        store,
        error,
        report: report.clone(),
    };
    if dry_run {
        let all = inventory_all(data, session_id)
            .await
            .map_err(|(s, e)| fail(Some(s), e, &report))?;
        for (store, items) in all {
            report
                .found
                .insert(store, items.into_iter().map(|i| i.label).collect());
        }
        return Ok(report);
    }
    let mut audit = match data
        .unfinished_audit(session_id)
        .await
        .map_err(|e| fail(None, e, &report))?
    {
        Some(mut entry) => {
            report.resumed = true;
            entry.runs += 1;
            entry
        }
        None => {
            let started_at = now_rfc3339();
            AuditEntry {
                id: format!("{started_at}#{session_id}"),
                action: "forget".into(),
                session_id: session_id.to_owned(),
                state: AuditEntry::STARTED.into(),
                started_at,
                completed_at: None,
                by: data.operator().await,
                steps: Store::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
                done: Vec::new(),
                deleted: BTreeMap::new(),
                runs: 1,
            }
        }
    };
    // The plan is on record before anything is deleted.
    data.write_audit(&audit)
        .await
        .map_err(|e| fail(None, e, &report))?;
    report.audit = Some(audit.clone());
    for store in Store::ALL {
        let items = data
            .inventory(session_id, store)
            .await
            .map_err(|e| fail(Some(store), e, &report))?;
        report.found.insert(
            store,
            items.iter().map(|i| i.label.clone()).collect::<Vec<_>>(),
        );
        let mut deleted = 0u64;
        let mut failure = None;
        for item in &items {
            match data.delete(item).await {
                Ok(()) => deleted += 1,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        *audit.deleted.entry(store.as_str().to_owned()).or_default() += deleted;
        if failure.is_none() && !audit.done.iter().any(|d| d == store.as_str()) {
            audit.done.push(store.as_str().to_owned());
        }
        // Best effort on the way out of a failure: the rerun recounts from the stores anyway.
        let written = data.write_audit(&audit).await;
        report.audit = Some(audit.clone());
        if let Some(error) = failure {
            return Err(fail(Some(store), error, &report));
        }
        written.map_err(|e| fail(Some(store), e, &report))?;
    }
    // Completed only when nothing is left (a concurrent write would show up here).
    let left = inventory_all(data, session_id)
        .await
        .map_err(|(s, e)| fail(Some(s), e, &report))?;
    if let Some((store, items)) = left.iter().find(|(_, items)| !items.is_empty()) {
        let error = PortError::new(
            telepipe_workers::error::PortErrorKind::Conflict,
            "forget",
            "Verify",
        )
        .with_code(format!(
            "{}_items_reappeared:{}",
            store.as_str(),
            items.len()
        ));
        return Err(fail(Some(*store), error, &report));
    }
    audit.state = AuditEntry::COMPLETED.into();
    audit.completed_at = Some(now_rfc3339());
    data.write_audit(&audit)
        .await
        .map_err(|e| fail(None, e, &report))?;
    report.audit = Some(audit);
    Ok(report)
}

/// One notification `reprocess` sends (or would send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refeed {
    pub object_ref: String,
    /// The attempt the intake stage runs it as (transcription only).
    pub attempt: Option<u32>,
    /// The S3-notification-shaped body (holds the key: never printed).
    pub body: String,
}

/// The S3 notification body for an object, as S3 would send it; `attempt` ≥ 2 adds the
/// reprocess marker the intake stage honours (`telepipe_workers::intake::reprocess_attempt`).
pub fn notification_body(object: &SessionObject, attempt: Option<u32>) -> String {
    let mut s3_object = serde_json::json!({
        "key": telepipe_events::s3::encode_key(&object.key),
        "size": object.size,
        "sequencer": format!("{:016X}", now_ms()),
    });
    if let Some(version) = &object.version_id {
        s3_object["versionId"] = version.clone().into();
    }
    let mut body = serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": now_rfc3339(),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "telepipe-reprocess",
            "bucket": {"name": object.bucket, "arn": format!("arn:aws:s3:::{}", object.bucket)},
            "object": s3_object,
        }
    }]});
    if let Some(attempt) = attempt {
        body["telepipe"] = serde_json::json!({"reprocess_attempt": attempt});
    }
    body.to_string()
}

/// Re-feeds the session's recordings to intake (as a new attempt, so each is transcribed
/// again) or its transcripts to clinical (the results documents are rewritten). With
/// `dry_run`, only says what would be sent.
pub async fn reprocess<D: SessionData>(
    data: &D,
    session_id: &str,
    from: Stage,
    dry_run: bool,
) -> Result<Vec<Refeed>, PortError> {
    let objects = data.objects(session_id, from).await?;
    let attempt = match from {
        Stage::Transcription => {
            let next = data.last_attempt(session_id).await?.max(1) + 1;
            if next > telepipe_workers::intake::MAX_REPROCESS_ATTEMPT {
                return Err(PortError::new(
                    telepipe_workers::error::PortErrorKind::InvalidRequest,
                    "reprocess",
                    "NextAttempt",
                )
                .with_code("too_many_attempts"));
            }
            Some(next)
        }
        Stage::Clinical => None,
    };
    // Who re-feeds: asked once (on AWS a call to STS), and only when something is re-fed.
    let actor = if dry_run || objects.is_empty() {
        String::new()
    } else {
        format!("operator:{}", data.operator().await)
    };
    let mut refeeds = Vec::new();
    for object in &objects {
        let refeed = Refeed {
            object_ref: object.object_ref(),
            attempt,
            body: notification_body(object, attempt),
        };
        if !dry_run {
            // Who re-fed what, before it is re-fed: the trail never misses a reprocess.
            let mut refs = vec![refeed.object_ref.clone(), format!("from:{}", from.as_str())];
            refs.extend(attempt.map(|n| format!("attempt:{n}")));
            let entry = telepipe_events::audit::AuditEntry::new(
                &actor,
                telepipe_events::audit::AuditAction::Reprocessed,
                Some(session_id),
                refs,
                now_ms(),
            );
            data.append_trail(&entry).await?;
            data.send(from, &refeed.body).await?;
        }
        refeeds.push(refeed);
    }
    Ok(refeeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 24, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T');
    }

    #[test]
    fn reprocess_bodies_parse_as_notifications_with_their_attempt() {
        let object = SessionObject {
            bucket: "b".into(),
            key: "recordings/s-1/a visit.wav".into(),
            size: 3,
            version_id: Some("v1".into()),
        };
        let body = notification_body(&object, Some(3));
        let parsed = telepipe_events::s3::parse_notification(&body).unwrap();
        let telepipe_events::s3::S3Notification::Records(records) = parsed else {
            panic!("records expected")
        };
        assert_eq!(records[0].key.as_deref(), Ok("recordings/s-1/a visit.wav"));
        assert_eq!(records[0].version_id.as_deref(), Some("v1"));
        assert_eq!(telepipe_workers::intake::reprocess_attempt(&body), 3);
        assert_eq!(
            telepipe_workers::intake::reprocess_attempt(&notification_body(&object, None)),
            1
        );
    }
}

//! Per-recording status of a local data directory, derived on read from what the
//! pipeline already records — published events, transcription jobs, queued and
//! dead-lettered messages — with the status store's current state (`status_store`)
//! taking precedence where it has the recording.

use crate::db::Db;
use crate::queue::{QueueDepth, Queues};
use crate::runtime::{CLINICAL_DLQ, INTAKE_DLQ, INTAKE_QUEUE};
use crate::transcriber;
use std::collections::BTreeMap;
use telepipe_events::ids::object_ref;
use telepipe_events::ids::JobName;
use telepipe_events::s3::{parse_notification, S3Notification};
use telepipe_workers::clinical::parse_transcript_key;
use telepipe_workers::status::State;

/// Where one recording is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordingStatus {
    pub session_id: String,
    /// The Transcribe job name, or the object reference when no job was started.
    pub reference: String,
    pub stage: &'static str,
    pub since_ms: i64,
    pub error: Option<String>,
    pub results_uri: Option<String>,
    /// When each stage was reached (received, transcribing, transcribed, extracted, ...).
    pub timeline: Vec<(&'static str, i64)>,
}

impl RecordingStatus {
    fn reach(&mut self, stage: &'static str, at: i64) {
        self.stage = stage;
        self.since_ms = at;
        self.timeline.push((stage, at));
    }
}

fn notification_keys(body: &str) -> Vec<(String, String)> {
    match parse_notification(body) {
        Ok(S3Notification::Records(records)) => records
            .into_iter()
            .filter_map(|r| r.key.ok().map(|key| (r.bucket, key)))
            .collect(),
        _ => Vec::new(),
    }
}

type Statuses = BTreeMap<(String, String), RecordingStatus>;

/// The status of (session, reference), created as "received" at `at` if new.
fn entry(by_ref: &mut Statuses, session: &str, reference: &str, at: i64) -> (String, String) {
    let key = (session.to_owned(), reference.to_owned());
    by_ref
        .entry(key.clone())
        .or_insert_with(|| RecordingStatus {
            session_id: session.to_owned(),
            reference: reference.to_owned(),
            stage: "received",
            since_ms: at,
            error: None,
            results_uri: None,
            timeline: Vec::new(),
        });
    key
}

/// Every recording's status, optionally for one session, oldest first.
pub fn recordings(
    db: &Db,
    queues: &Queues,
    session: Option<&str>,
) -> rusqlite::Result<Vec<RecordingStatus>> {
    let mut by_ref: Statuses = BTreeMap::new();
    let mut keys_by_ref = Vec::new();
    {
        let connection = db.lock();
        let mut statement =
            connection.prepare("SELECT detail_type, time, envelope FROM events ORDER BY seq")?;
        let rows = statement.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (detail_type, at, envelope) = row?;
            let envelope: serde_json::Value = serde_json::from_str(&envelope).unwrap_or_default();
            let detail = &envelope["detail"];
            let session_id = detail["session_id"].as_str().unwrap_or("-");
            match detail_type.as_str() {
                "Transcription Started" => {
                    let key = entry(
                        &mut by_ref,
                        session_id,
                        detail["job_name"].as_str().unwrap_or("-"),
                        at,
                    );
                    keys_by_ref.push((
                        detail["recording"]["object_ref"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        key.clone(),
                    ));
                    keys_by_ref.push((key.1.clone(), key));
                }
                "Recording Rejected" => {
                    let key = entry(
                        &mut by_ref,
                        session_id,
                        detail["recording"]["object_ref"].as_str().unwrap_or("-"),
                        at,
                    );
                    keys_by_ref.push((key.1.clone(), key));
                }
                _ => {}
            }
            let key = keys_by_ref
                .iter()
                .rev()
                .find(|(reference, _)| {
                    // A retried attempt's job (`{job}-a{n}`) belongs to its recording.
                    Some(reference.as_str())
                        == detail["job_name"]
                            .as_str()
                            .and_then(JobName::parse)
                            .as_ref()
                            .map(JobName::recording)
                        || Some(reference.as_str()) == detail["recording"]["object_ref"].as_str()
                })
                .map(|(_, key)| key.clone());
            let Some(key) = key else { continue };
            let status = by_ref.get_mut(&key).expect("entry made above");
            match detail_type.as_str() {
                "Transcription Started" if status.stage == "received" => {
                    status.reach("transcribing", at)
                }
                "Recording Rejected" => {
                    status.reach("rejected", at);
                    status.error = detail["reason"].as_str().map(str::to_owned);
                }
                "Clinical Entities Extracted" => {
                    status.reach("extracted", at);
                    status.error = None;
                    status.results_uri = detail["results_uri"].as_str().map(str::to_owned);
                }
                _ => {}
            }
        }
    }
    for job in transcriber::jobs(db, None)? {
        let Some(status) = by_ref.get_mut(&(job.session_id.clone(), job.name.clone())) else {
            continue;
        };
        match job.status.as_str() {
            "COMPLETED" if status.stage == "transcribing" => {
                status.reach("transcribed", job.updated_at)
            }
            "COMPLETED" => status.timeline.push(("transcribed", job.updated_at)),
            "FAILED" => {
                status.reach("failed", job.updated_at);
                status.error = job.failure_reason.map(|r| format!("transcription: {r}"));
            }
            _ if job.failure_reason.is_some() && status.stage == "transcribing" => {
                status.error = job
                    .failure_reason
                    .map(|r| format!("retrying after {r} (attempt {})", job.attempts));
            }
            _ => {}
        }
    }
    // The clinical stage's own prefix parser and setting: the same keys it reads.
    let transcripts_prefix = telepipe_workers::config::prefix_or_default(
        &telepipe_workers::config::Env::process(),
        "TELEPIPE_TRANSCRIPTS_PREFIX",
        telepipe_workers::config::DEFAULT_TRANSCRIPTS_PREFIX,
    );
    for message in queues.peek(CLINICAL_DLQ)? {
        for (_, key) in notification_keys(&message.body) {
            let Some((session_id, job)) = parse_transcript_key(&transcripts_prefix, &key) else {
                continue;
            };
            if let Some(status) = by_ref.get_mut(&(session_id.to_string(), job.to_string())) {
                if status.stage != "extracted" {
                    status.reach("failed", message.sent_at_ms);
                    status.error = message
                        .attributes
                        .get("telepipe.reason")
                        .map(|r| format!("clinical: {r}"));
                }
            }
        }
    }
    for (queue, stage) in [(INTAKE_DLQ, "failed"), (INTAKE_QUEUE, "received")] {
        for message in queues.peek(queue)? {
            for (bucket, key) in notification_keys(&message.body) {
                let reference = object_ref(&bucket, &key);
                if keys_by_ref.iter().any(|(r, _)| *r == reference) {
                    continue;
                }
                let session_id = key.split('/').nth(1).unwrap_or("-").to_owned();
                let key = entry(&mut by_ref, &session_id, &reference, message.sent_at_ms);
                let status = by_ref.get_mut(&key).expect("entry made above");
                if stage == "failed" {
                    status.reach("failed", message.sent_at_ms);
                    status.error = message
                        .attributes
                        .get("telepipe.reason")
                        .map(|r| format!("intake: {r}"));
                } else if status.timeline.is_empty() {
                    status.timeline.push(("received", message.sent_at_ms));
                }
            }
        }
    }
    // Where the status store has the recording, its current state wins: it also knows
    // the sweeper's retries (`{job}-a{n}`), which the events and jobs above do not tie
    // back to the recording.
    let store = crate::status_store::SqliteStatus::new(db.clone());
    if let Ok(current) = store.current(session) {
        for c in current {
            let Some(status) = by_ref.get_mut(&(c.session_id.clone(), c.recording.clone())) else {
                continue;
            };
            if status.stage != c.state.as_str() {
                status.reach(c.state.as_str(), c.since_ms);
            }
            status.error = match (c.state, &c.reason) {
                (State::Failed | State::Rejected, Some(reason)) => Some(reason.clone()),
                (State::Transcribing, _) if c.attempt > 1 => Some(format!(
                    "attempt {} ({})",
                    c.attempt,
                    c.job_name.unwrap_or_default()
                )),
                (State::Extracted, _) => None,
                _ => status.error.take(),
            };
        }
    }
    let rank = |stage: &str| {
        ["received", "transcribing", "transcribed", "extracted"]
            .iter()
            .position(|s| *s == stage)
            .unwrap_or(4)
    };
    let mut all: Vec<RecordingStatus> = by_ref
        .into_values()
        .filter(|s| session.is_none_or(|wanted| s.session_id == wanted))
        .collect();
    for status in &mut all {
        // Assembled from several sources: order by time, then by pipeline order for equal times.
        status
            .timeline
            .sort_by_key(|(stage, at)| (*at, rank(stage)));
    }
    all.sort_by_key(|s| {
        (
            s.timeline.first().map_or(s.since_ms, |t| t.1),
            s.session_id.clone(),
        )
    });
    Ok(all)
}

/// Depth of every queue, dead-letter queues included.
pub fn queue_depths(queues: &Queues) -> rusqlite::Result<Vec<(String, QueueDepth)>> {
    queues
        .queue_names()?
        .into_iter()
        .map(|name| queues.depth(&name).map(|depth| (name, depth)))
        .collect()
}

/// Milliseconds as an RFC 3339 timestamp.
pub fn format_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

//! `telepipe forget` and `telepipe reprocess` on a whole local runtime: sessions booked,
//! reminded and recorded through every stage (stand-in engines), then one forgotten (every
//! store empty for it, the other untouched, an audit entry without PHI), a forget
//! interrupted midway and resumed, dry runs that change nothing, and reprocessing from
//! either stage.

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use telepipe_local::forget::LocalSessionData;
use telepipe_local::runtime::Pipeline;
use telepipe_local::transcriber::{SpeechToText, SttError};
use telepipe_ops::session_data::{
    forget, reprocess, AuditEntry, Item, SessionData, SessionObject, Stage, Store,
};
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::memory::KeywordNlp;
use telepipe_workers::status::StatusStore;
use telepipe_workers::synth::{transcript, SynthLabels};

struct FakeStt;

impl SpeechToText for FakeStt {
    fn transcribe(&self, _media: &[u8], _format: &str, _job: &str) -> Result<Vec<u8>, SttError> {
        Ok(transcript(20, SynthLabels::Speakers).into_bytes())
    }
}

type Local = Pipeline<KeywordNlp, FakeStt>;

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "telepipe-forget-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn open(dir: &Path) -> Local {
    let mut pipeline = Pipeline::open(dir, KeywordNlp::clinical(), Arc::new(FakeStt)).unwrap();
    pipeline.intake_consumer.retry_base = Duration::ZERO;
    pipeline.clinical_consumer.retry_base = Duration::ZERO;
    pipeline.sessions_consumer.retry_base = Duration::ZERO;
    pipeline.notifications_consumer.retry_base = Duration::ZERO;
    pipeline.worker.retry_base_ms = 0;
    pipeline
}

fn wav() -> Vec<u8> {
    let mut bytes = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    bytes.extend([
        16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0,
    ]);
    bytes.extend(b"data\x00\x00\x00\x00");
    bytes.extend(vec![0u8; 200]);
    bytes
}

fn scheduled(session: &str, start: Timestamp) -> Value {
    json!({"source": "telehealth.sessions", "detail-type": "Session Scheduled",
           "id": telepipe_local::db::random_id(), "version": "0", "time": Timestamp::now().to_string(),
           "account": "0", "region": "local", "resources": [],
           "detail": {"session_id": session, "version": 1, "start": start.to_string(), "duration_minutes": 30,
               "patient_time_zone": "Europe/Madrid", "locale": "es", "clinic_name": "Centro de Salud Sur",
               "patient": {"reference": "p-1", "channel": "sms", "address": "+34600111222"},
               "clinician": {"reference": "c-1", "channel": "email", "address": "medica@example.org"}}})
}

const SESSIONS: [&str; 2] = ["visit-a", "visit-b"];

/// Two sessions through every stage: booked (two reminder timers each), one reminder sent
/// (outbox file, intent), a recording transcribed and extracted (transcript, results,
/// status, events, job), and one notification still queued for each.
async fn populated(name: &str) -> (PathBuf, Local) {
    let dir = fresh_dir(name);
    let pipeline = open(&dir);
    let start = Timestamp::now()
        .checked_add(SignedDuration::from_hours(72))
        .unwrap();
    for session in SESSIONS {
        pipeline.bus.put(&scheduled(session, start)).unwrap();
        let folder = dir.join("buckets/recordings/recordings").join(session);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("Maria Lopez visit.wav"), wav()).unwrap();
    }
    pipeline.run_until_idle(|_| {}).await.unwrap();
    for session in SESSIONS {
        let timers = pipeline.scheduler.list(Some(session)).unwrap();
        assert_eq!(timers.len(), 2);
        pipeline.scheduler.fire(&timers[0]).unwrap();
    }
    pipeline.run_until_idle(|_| {}).await.unwrap();
    for session in SESSIONS {
        pipeline
            .queues
            .send(
                "notifications",
                &json!({"session_id": session, "kind": "reminder"}).to_string(),
                &BTreeMap::new(),
                0,
            )
            .unwrap();
    }
    (dir, pipeline)
}

fn count(pipeline: &Local, sql: &str, session: &str) -> usize {
    pipeline
        .db
        .lock()
        .query_row(sql, [session], |r| r.get::<_, i64>(0))
        .unwrap() as usize
}

fn files_under(path: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// What the data directory holds about a session, counted independently of the adapter.
fn footprint(dir: &Path, pipeline: &Local, session: &str) -> BTreeMap<&'static str, usize> {
    let intents: Vec<String> = {
        let db = pipeline.db.lock();
        let mut statement = db
            .prepare("SELECT intent_id FROM intents WHERE session_id = ?1")
            .unwrap();
        statement
            .query_map([session], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let outbox = std::fs::read_dir(dir.join("outbox"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            intents.iter().any(|i| name.contains(i.as_str()))
        })
        .count();
    let like = format!("%{session}%");
    BTreeMap::from([
        (
            "recordings",
            files_under(&dir.join("buckets/recordings/recordings").join(session)),
        ),
        (
            "transcripts",
            files_under(&dir.join("buckets/transcripts/transcripts").join(session)),
        ),
        (
            "results",
            files_under(&dir.join("buckets/results/clinical").join(session)),
        ),
        (
            "timers",
            count(
                pipeline,
                "SELECT COUNT(*) FROM timers WHERE payload LIKE ?1",
                &like,
            ),
        ),
        (
            "messages",
            count(
                pipeline,
                "SELECT COUNT(*) FROM messages WHERE body LIKE ?1",
                &like,
            ),
        ),
        ("intents", intents.len()),
        ("outbox", outbox),
        (
            "sessions",
            count(
                pipeline,
                "SELECT COUNT(*) FROM sessions WHERE session_id = ?1",
                session,
            ),
        ),
        (
            "transitions",
            count(
                pipeline,
                "SELECT COUNT(*) FROM status_transitions WHERE session_id = ?1",
                session,
            ),
        ),
        (
            "current",
            count(
                pipeline,
                "SELECT COUNT(*) FROM recording_status WHERE session_id = ?1",
                session,
            ),
        ),
        (
            "events",
            count(
                pipeline,
                "SELECT COUNT(*) FROM events WHERE session_id = ?1",
                session,
            ),
        ),
        (
            "jobs",
            count(
                pipeline,
                "SELECT COUNT(*) FROM transcription_jobs WHERE session_id = ?1",
                session,
            ),
        ),
        (
            "announced",
            count(
                pipeline,
                "SELECT COUNT(*) FROM announced_objects WHERE key LIKE ?1",
                &like,
            ),
        ),
    ])
}

fn audit_rows(pipeline: &Local) -> usize {
    pipeline
        .db
        .lock()
        .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get::<_, i64>(0))
        .unwrap_or(0) as usize
}

#[tokio::test]
async fn forgetting_a_session_empties_every_store_for_it_and_only_for_it() {
    let (dir, pipeline) = populated("forget").await;
    let data = LocalSessionData::new(&dir, pipeline.db.clone()).unwrap();
    // A Chime capture chunk of the same visit: part of its recording, forgotten with it.
    let capture = dir.join("buckets/recordings/captures/visit-a/audio");
    std::fs::create_dir_all(&capture).unwrap();
    std::fs::write(capture.join("2026-12-01-15-00-00-000.mp4"), b"chunk").unwrap();
    let before_a = footprint(&dir, &pipeline, "visit-a");
    let before_b = footprint(&dir, &pipeline, "visit-b");
    for (store, n) in &before_a {
        assert!(*n > 0, "visit-a has nothing in {store}: {before_a:?}");
    }

    // A dry run finds everything and changes nothing.
    let plan = forget(&data, "visit-a", true).await.unwrap();
    assert!(plan.audit.is_none());
    assert_eq!(plan.found[&Store::Recordings].len(), 2);
    assert_eq!(plan.found[&Store::Schedules].len(), 1);
    assert!(!plan.found[&Store::QueuedMessages].is_empty());
    let printed = format!("{:?}", plan.found);
    assert!(
        !printed.contains("Maria") && !printed.contains("recordings/"),
        "{printed}"
    );
    assert_eq!(footprint(&dir, &pipeline, "visit-a"), before_a);
    assert_eq!(audit_rows(&pipeline), 0);

    // A reminder still in flight when the session is forgotten (on SQS it cannot be deleted).
    let in_flight = pipeline.scheduler.list(Some("visit-a")).unwrap()[0]
        .payload
        .clone();

    let report = forget(&data, "visit-a", false).await.unwrap();
    let after_a = footprint(&dir, &pipeline, "visit-a");
    assert!(after_a.values().all(|n| *n == 0), "{after_a:?}");
    assert_eq!(
        footprint(&dir, &pipeline, "visit-b"),
        before_b,
        "the other session is untouched"
    );
    assert!(!dir.join("buckets/recordings/recordings/visit-a").exists());
    assert!(!capture.join("2026-12-01-15-00-00-000.mp4").exists());

    let audit = report.audit.unwrap();
    assert!(audit.is_completed() && !report.resumed);
    assert_eq!(audit.deleted["recordings"], 2);
    assert_eq!(audit.deleted["schedules"], 1);
    assert_eq!(audit.done.len(), Store::ALL.len());
    assert!(audit.by.starts_with("local:"));
    let entries = data.audit_entries().unwrap();
    assert_eq!(entries, vec![audit.clone()]);
    let text = audit.to_json();
    for phi in ["Maria", "recordings/", "+34600111222", "medica@", "Salud"] {
        assert!(!text.contains(phi), "{phi} in {text}");
    }

    // The notifier skips the in-flight reminder as unknown_session: nothing sent, no
    // intent or state re-created; only the Notification Skipped event (ids only).
    let outbox_before = files_under(&dir.join("outbox"));
    pipeline
        .queues
        .send("notifications", &in_flight, &BTreeMap::new(), 0)
        .unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();
    assert_eq!(files_under(&dir.join("outbox")), outbox_before);
    let after = footprint(&dir, &pipeline, "visit-a");
    assert_eq!(
        (after["intents"], after["sessions"], after["messages"]),
        (0, 0, 0)
    );
    let skipped: Vec<String> = {
        let db = pipeline.db.lock();
        let mut statement = db
            .prepare("SELECT envelope FROM events WHERE session_id = 'visit-a'")
            .unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("Notification Skipped") && skipped[0].contains("unknown_session"));
    pipeline
        .db
        .lock()
        .execute("DELETE FROM events WHERE session_id = 'visit-a'", [])
        .unwrap();

    // Forgetting again finds nothing and still leaves its own audit entry.
    let again = forget(&data, "visit-a", false).await.unwrap();
    assert!(again.found.values().all(Vec::is_empty));
    assert_eq!(data.audit_entries().unwrap().len(), 2);
}

/// The local adapter with a failure injected at the `fail_at`-th delete.
struct Flaky {
    inner: LocalSessionData,
    deletes: AtomicUsize,
    fail_at: usize,
}

impl SessionData for Flaky {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn operator(&self) -> String {
        self.inner.operator().await
    }
    async fn inventory(&self, session_id: &str, store: Store) -> Result<Vec<Item>, PortError> {
        self.inner.inventory(session_id, store).await
    }
    async fn delete(&self, item: &Item) -> Result<(), PortError> {
        if self.deletes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(PortError::new(PortErrorKind::Unavailable, "test", "Delete"));
        }
        self.inner.delete(item).await
    }
    async fn write_audit(&self, entry: &AuditEntry) -> Result<(), PortError> {
        self.inner.write_audit(entry).await
    }
    async fn unfinished_audit(&self, session_id: &str) -> Result<Option<AuditEntry>, PortError> {
        self.inner.unfinished_audit(session_id).await
    }
    async fn objects(
        &self,
        session_id: &str,
        from: Stage,
    ) -> Result<Vec<SessionObject>, PortError> {
        self.inner.objects(session_id, from).await
    }
    async fn last_attempt(&self, session_id: &str) -> Result<u32, PortError> {
        self.inner.last_attempt(session_id).await
    }
    async fn send(&self, to: Stage, body: &str) -> Result<(), PortError> {
        self.inner.send(to, body).await
    }
    async fn append_trail(
        &self,
        entry: &telepipe_events::audit::AuditEntry,
    ) -> Result<(), PortError> {
        self.inner.append_trail(entry).await
    }
}

#[tokio::test]
async fn an_interrupted_forget_is_finished_by_running_it_again() {
    let (dir, pipeline) = populated("resume").await;
    let data = LocalSessionData::new(&dir, pipeline.db.clone()).unwrap();
    let before_b = footprint(&dir, &pipeline, "visit-b");
    let flaky = Flaky {
        inner: data.clone(),
        deletes: AtomicUsize::new(0),
        fail_at: 6,
    };
    let failure = forget(&flaky, "visit-a", false).await.unwrap_err();
    let message = failure.to_string();
    assert!(
        message.contains("telepipe forget --session visit-a"),
        "{message}"
    );
    let started = data.unfinished_audit("visit-a").await.unwrap().unwrap();
    assert_eq!(started.state, "started");
    assert_eq!(started.deleted.values().sum::<u64>(), 5);
    let partial = footprint(&dir, &pipeline, "visit-a");
    assert!(
        partial.values().any(|n| *n > 0),
        "something is left: {partial:?}"
    );
    assert_eq!(partial["timers"], 0, "schedules went first");

    let report = forget(&data, "visit-a", false).await.unwrap();
    assert!(report.resumed);
    let audit = report.audit.unwrap();
    assert!(audit.is_completed());
    assert_eq!((audit.id.as_str(), audit.runs), (started.id.as_str(), 2));
    assert!(audit.deleted.values().sum::<u64>() > 5);
    assert_eq!(data.audit_entries().unwrap().len(), 1, "one entry, resumed");
    assert!(data.unfinished_audit("visit-a").await.unwrap().is_none());
    assert!(footprint(&dir, &pipeline, "visit-a")
        .values()
        .all(|n| *n == 0));
    assert_eq!(footprint(&dir, &pipeline, "visit-b"), before_b);
}

fn results_docs(dir: &Path, session: &str) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir.join("buckets/results/clinical").join(session))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
    names.sort();
    names
}

#[tokio::test]
async fn reprocess_recreates_results_and_reruns_transcription() {
    let (dir, pipeline) = populated("reprocess").await;
    let data = LocalSessionData::new(&dir, pipeline.db.clone()).unwrap();
    let docs = results_docs(&dir, "visit-a");
    assert_eq!(docs.len(), 1);
    let doc_path = dir.join("buckets/results/clinical/visit-a").join(&docs[0]);
    let original = std::fs::read(&doc_path).unwrap();

    // From clinical: the deleted results document comes back, identical.
    std::fs::remove_file(&doc_path).unwrap();
    let depth = |queue: &str| pipeline.queues.peek(queue).unwrap().len();
    let dry = reprocess(&data, "visit-a", Stage::Clinical, true)
        .await
        .unwrap();
    assert_eq!(
        (dry.len(), depth("clinical")),
        (1, 0),
        "a dry run sends nothing"
    );
    let sent = reprocess(&data, "visit-a", Stage::Clinical, false)
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(depth("clinical"), 1);
    pipeline.run_until_idle(|_| {}).await.unwrap();
    assert_eq!(std::fs::read(&doc_path).unwrap(), original);

    // From transcription: a new attempt is transcribed and extracted.
    let sent = reprocess(&data, "visit-a", Stage::Transcription, false)
        .await
        .unwrap();
    assert_eq!((sent.len(), sent[0].attempt), (1, Some(2)));
    pipeline.run_until_idle(|_| {}).await.unwrap();
    let jobs = telepipe_local::transcriber::jobs(&pipeline.db, Some("visit-a")).unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let base = docs[0].trim_end_matches(".json");
    let retry = jobs
        .iter()
        .find(|j| j.name == format!("{base}-a2"))
        .expect("attempt 2 job");
    assert_eq!(retry.status, "COMPLETED");
    let mut expected = vec![docs[0].clone(), format!("{base}-a2.json")];
    expected.sort();
    assert_eq!(results_docs(&dir, "visit-a"), expected);
    let timeline = pipeline.status.timeline("visit-a").await.unwrap();
    assert!(timeline
        .iter()
        .any(|t| t.recording == base && t.attempt == 2 && t.state.as_str() == "extracted"));
    // A second reprocess is attempt 3; the other session was not touched.
    let next = reprocess(&data, "visit-a", Stage::Transcription, true)
        .await
        .unwrap();
    assert_eq!(next[0].attempt, Some(3));
    assert_eq!(results_docs(&dir, "visit-b").len(), 1);

    // Each real reprocess is in the audit trail with what it re-fed; dry runs are not.
    let trail = telepipe_local::audit::LocalAuditLog::new(pipeline.db.clone())
        .unwrap()
        .entries(Some("visit-a"), 0)
        .unwrap();
    let reprocessed: Vec<_> = trail
        .iter()
        .filter(|e| e.action.as_str() == "reprocessed")
        .collect();
    assert_eq!(reprocessed.len(), 2, "{reprocessed:?}");
    assert!(reprocessed.iter().all(|e| e.actor.starts_with("operator:")));
    assert!(reprocessed[0].refs.iter().any(|r| r == "from:clinical"));
    assert!(reprocessed[1].refs.iter().any(|r| r == "attempt:2"));
}

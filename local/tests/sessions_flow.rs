//! Session events through the local runtime: the same sessions and notifier stages over
//! SQLite state, SQLite timers and the outbox directory, driven the way a user drives
//! them by hand (`telepipe events put`, `telepipe timers --fire`, `telepipe run`).

mod common;

use common::{drop_recording, fresh_dir, wav};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use telepipe_local::runtime::Pipeline;
use telepipe_local::transcriber::{SpeechToText, SttError};
use telepipe_workers::memory::KeywordNlp;
use telepipe_workers::synth::{transcript, SynthLabels};

struct FakeStt;

impl SpeechToText for FakeStt {
    fn transcribe(&self, _media: &[u8], _format: &str, _job: &str) -> Result<Vec<u8>, SttError> {
        Ok(transcript(20, SynthLabels::Speakers).into_bytes())
    }
}

fn open(dir: &Path) -> Pipeline<KeywordNlp, FakeStt> {
    let mut pipeline = Pipeline::open(dir, KeywordNlp::clinical(), Arc::new(FakeStt)).unwrap();
    pipeline.intake_consumer.retry_base = Duration::ZERO;
    pipeline.clinical_consumer.retry_base = Duration::ZERO;
    pipeline.sessions_consumer.retry_base = Duration::ZERO;
    pipeline.notifications_consumer.retry_base = Duration::ZERO;
    pipeline.worker.retry_base_ms = 0;
    pipeline
}

fn envelope(source: &str, detail_type: &str, detail: Value) -> Value {
    json!({"source": source, "detail-type": detail_type, "detail": detail, "id": telepipe_local::db::random_id(),
           "version": "0", "time": Timestamp::now().to_string(), "account": "0", "region": "local", "resources": []})
}

fn scheduled(session: &str, start: Timestamp) -> Value {
    envelope(
        "telehealth.sessions",
        "Session Scheduled",
        json!({"session_id": session, "version": 1, "start": start.to_string(), "duration_minutes": 30,
               "patient_time_zone": "Europe/Madrid", "locale": "es", "clinic_name": "Centro de Salud Sur",
               "patient": {"reference": "p-1", "channel": "sms", "address": "+34600111222"},
               "clinician": {"reference": "c-1", "channel": "email", "address": "medica@example.org"}}),
    )
}

fn outbox(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("outbox"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

fn events_of(pipeline: &Pipeline<KeywordNlp, FakeStt>, detail_type: &str) -> Vec<Value> {
    let db = pipeline.db.lock();
    let mut statement = db
        .prepare("SELECT envelope FROM events WHERE detail_type = ?1 ORDER BY seq")
        .unwrap();
    statement
        .query_map([detail_type], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|e| serde_json::from_str::<Value>(&e.unwrap()).unwrap()["detail"].clone())
        .collect()
}

async fn settle(pipeline: &Pipeline<KeywordNlp, FakeStt>) {
    pipeline.run_until_idle(|_| {}).await.unwrap();
}

fn fire_all(pipeline: &Pipeline<KeywordNlp, FakeStt>, session: &str) -> usize {
    let timers = pipeline.scheduler.list(Some(session)).unwrap();
    for timer in &timers {
        pipeline.scheduler.fire(timer).unwrap();
    }
    timers.len()
}

#[tokio::test]
async fn reminders_alerts_and_cancellation_through_the_local_runtime() {
    let dir = fresh_dir("flow");
    let pipeline = open(&dir);
    let start = Timestamp::now()
        .checked_add(SignedDuration::from_hours(72))
        .unwrap();
    pipeline.bus.put(&scheduled("visit-1", start)).unwrap();
    // A duplicate delivery of the same booking changes nothing.
    pipeline.bus.put(&scheduled("visit-1", start)).unwrap();
    settle(&pipeline).await;
    let timers = pipeline.scheduler.list(Some("visit-1")).unwrap();
    assert_eq!(timers.len(), 2, "24 h and 1 h reminders");
    assert!(timers
        .iter()
        .all(|t| t.time_zone == "Europe/Madrid" && t.fire_at < start));
    assert_eq!(events_of(&pipeline, "Reminder Scheduled").len(), 2);

    // The reminders come due (fired early by hand, as `telepipe timers --fire` does).
    assert_eq!(fire_all(&pipeline, "visit-1"), 2);
    settle(&pipeline).await;
    let sent = outbox(&dir);
    assert_eq!(sent.len(), 2);
    for message in &sent {
        assert_eq!(
            (message["channel"].as_str(), message["to"].as_str()),
            (Some("sms"), Some("+34600111222"))
        );
        let body = message["body"].as_str().unwrap();
        assert!(
            body.starts_with("Consulta por video con Centro de Salud Sur")
                && body.ends_with("Responda C para confirmar, R para cambiar"),
            "{body}"
        );
    }
    assert_eq!(events_of(&pipeline, "Notification Sent").len(), 2);

    // The patient waits; the clinician is told once by email.
    let join = envelope(
        "telehealth.sessions",
        "Waiting Room Joined",
        json!({"session_id": "visit-1", "version": 2, "participant_reference": "p-1"}),
    );
    pipeline.bus.put(&join).unwrap();
    pipeline.bus.put(&join).unwrap();
    settle(&pipeline).await;
    let sent = outbox(&dir);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2]["to"], "medica@example.org");
    assert_eq!(sent[2]["subject"], "Su paciente está en la sala de espera");

    // Rescheduled: new timers replace the old; cancelled: none remain.
    let moved = envelope(
        "telehealth.sessions",
        "Session Rescheduled",
        json!({"session_id": "visit-1", "version": 3, "start": start.checked_add(SignedDuration::from_hours(24)).unwrap().to_string(), "duration_minutes": 30}),
    );
    pipeline.bus.put(&moved).unwrap();
    pipeline.bus.put(&moved).unwrap();
    settle(&pipeline).await;
    assert_eq!(pipeline.scheduler.list(Some("visit-1")).unwrap().len(), 2);
    // The patient is told the new time, once.
    let sent = outbox(&dir);
    assert_eq!(sent.len(), 4);
    assert!(
        sent[3]["body"].as_str().unwrap().contains("pasó al"),
        "{}",
        sent[3]["body"]
    );
    let cancel = envelope(
        "telehealth.sessions",
        "Session Cancelled",
        json!({"session_id": "visit-1", "version": 4}),
    );
    pipeline.bus.put(&cancel).unwrap();
    // The booking arrives again late: it must not resurrect anything.
    pipeline.bus.put(&scheduled("visit-1", start)).unwrap();
    settle(&pipeline).await;
    assert!(pipeline.scheduler.list(Some("visit-1")).unwrap().is_empty());
    assert_eq!(events_of(&pipeline, "Reminders Cancelled").len(), 2);
    // The patient is told once, whatever redeliveries and late events follow.
    pipeline.bus.put(&cancel).unwrap();
    settle(&pipeline).await;
    let sent = outbox(&dir);
    assert_eq!(sent.len(), 5, "only the cancellation notice was added");
    assert_eq!(sent[4]["to"], "+34600111222");
    assert!(
        sent[4]["body"].as_str().unwrap().contains("fue cancelada"),
        "{}",
        sent[4]["body"]
    );
}

/// What `telepipe sms receive` puts on the replies queue.
fn text_from(pipeline: &Pipeline<KeywordNlp, FakeStt>, from: &str, body: &str) {
    let sms = json!({"provider": "local", "message_id": telepipe_local::db::random_id(),
                     "from": from, "to": "", "body": body});
    pipeline
        .queues
        .send(
            telepipe_local::runtime::REPLIES_QUEUE,
            &sms.to_string(),
            &std::collections::BTreeMap::new(),
            0,
        )
        .unwrap();
}

#[tokio::test]
async fn patients_answer_by_text_stop_start_confirm_through_the_local_runtime() {
    let dir = fresh_dir("replies");
    let pipeline = open(&dir);
    let start = Timestamp::now()
        .checked_add(SignedDuration::from_hours(72))
        .unwrap();
    pipeline.bus.put(&scheduled("visit-9", start)).unwrap();
    settle(&pipeline).await;

    // STOP (as Spanish-speaking patients may write it too): no reminder goes to the number.
    text_from(&pipeline, "+34600111222", "Stop.");
    settle(&pipeline).await;
    assert_eq!(events_of(&pipeline, "Patient Opted Out").len(), 1);
    assert_eq!(fire_all(&pipeline, "visit-9"), 2);
    settle(&pipeline).await;
    assert!(
        outbox(&dir).is_empty(),
        "nothing was sent to an opted-out number"
    );
    let skipped = events_of(&pipeline, "Notification Skipped");
    assert_eq!(skipped.len(), 2);
    assert!(skipped.iter().all(|e| e["reason"] == "opted_out"));

    // START: the next reminder goes out.
    text_from(&pipeline, "+34600111222", "START");
    settle(&pipeline).await;
    assert_eq!(events_of(&pipeline, "Patient Opted In").len(), 1);
    let moved = envelope(
        "telehealth.sessions",
        "Session Rescheduled",
        json!({"session_id": "visit-9", "version": 2, "start": start.checked_add(SignedDuration::from_hours(2)).unwrap().to_string(), "duration_minutes": 30}),
    );
    pipeline.bus.put(&moved).unwrap();
    settle(&pipeline).await;
    assert_eq!(fire_all(&pipeline, "visit-9"), 2);
    settle(&pipeline).await;
    assert_eq!(
        outbox(&dir).len(),
        3,
        "the new time, then the reminders go out again"
    );
    // The durable log answers "was this patient reminded?": two skipped, the reschedule
    // notice and two reminders sent.
    let log = telepipe_local::sessions::notification_log(&pipeline.db, "visit-9").unwrap();
    let outcomes: Vec<(&str, Option<&str>)> = log
        .iter()
        .map(|e| (e.outcome.as_str(), e.reason.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("skipped", Some("opted_out")),
            ("skipped", Some("opted_out")),
            ("sent", None),
            ("sent", None),
            ("sent", None)
        ]
    );
    assert!(log.iter().all(|e| {
        let text = serde_json::to_string(e).unwrap();
        !text.contains("600111222")
    }));

    // CONFIRM: the clinic hears of it, for this session; CANCEL never cancels a visit.
    text_from(&pipeline, "+34600111222", "confirmar");
    text_from(&pipeline, "+34600111222", "Can I come earlier?");
    text_from(&pipeline, "+15550000000", "C");
    settle(&pipeline).await;
    let confirmed = events_of(&pipeline, "Appointment Confirmed");
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0]["session_id"], "visit-9");
    assert_eq!(confirmed[0]["language"], "es");
    let other = events_of(&pipeline, "Patient Message Received");
    assert_eq!(
        other.len(),
        2,
        "free text, and a confirmation from an unknown number"
    );
    let all: Vec<String> = [
        "Patient Opted Out",
        "Patient Opted In",
        "Appointment Confirmed",
        "Patient Message Received",
    ]
    .iter()
    .flat_map(|t| events_of(&pipeline, t))
    .map(|e| e.to_string())
    .collect();
    for event in &all {
        assert!(
            !event.contains("600111222") && !event.contains("earlier"),
            "{event}"
        );
    }
}

#[tokio::test]
async fn a_session_that_ends_without_its_recording_is_reported_and_one_with_it_is_not() {
    let dir = fresh_dir("recording");
    let pipeline = open(&dir);
    let start = Timestamp::now()
        .checked_add(SignedDuration::from_mins(10))
        .unwrap();
    for session in ["visit-silent", "visit-recorded"] {
        pipeline.bus.put(&scheduled(session, start)).unwrap();
    }
    settle(&pipeline).await;
    // One session's recording is uploaded: intake publishes Transcription Started, which
    // the recording-arrivals rule routes back to the sessions worker.
    drop_recording(&dir, "visit-recorded", "call.wav", &wav(100));
    settle(&pipeline).await;
    for session in ["visit-silent", "visit-recorded"] {
        let ended = envelope(
            "aws.chime",
            "Chime Meeting State Change",
            json!({"eventType": "chime:MeetingEnded", "meetingId": "m", "externalMeetingId": session}),
        );
        pipeline.bus.put(&ended).unwrap();
    }
    settle(&pipeline).await;
    assert_eq!(
        fire_all(&pipeline, "visit-recorded"),
        0,
        "no check needed: the recording arrived"
    );
    assert_eq!(fire_all(&pipeline, "visit-silent"), 1, "a recording check");
    settle(&pipeline).await;
    let missing = events_of(&pipeline, "Recording Missing");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["session_id"], "visit-silent");
    assert_eq!(missing[0]["waited_minutes"], 120);
}

#[test]
fn the_phone_key_is_made_once_whole_and_private_and_never_replaced_silently() {
    let dir = fresh_dir("phone-key");
    let first = telepipe_local::runtime::phone_key(&dir).unwrap();
    let again = telepipe_local::runtime::phone_key(&dir).unwrap();
    assert_eq!(first.digest("+15551230000"), again.digest("+15551230000"));
    let text = std::fs::read_to_string(dir.join("phone-key")).unwrap();
    assert_eq!(text.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("phone-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::write(dir.join("phone-key"), "").unwrap();
    assert!(
        telepipe_local::runtime::phone_key(&dir).is_err(),
        "an empty key is refused"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

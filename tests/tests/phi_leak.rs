//! No PHI in logs or events: a transcript full of distinctive marker phrases, a file name
//! with a patient's name, and failures on content holding markers, pushed through both
//! stages with logging captured at the most verbose level through the production JSON
//! subscriber. No marker may appear in any log line, published event or EMF metric line;
//! metric dimensions carry no session id, job name or object reference either.

use std::io::Write;
use std::sync::{Arc, Mutex};
use telepipe_events::s3::encode_key;
use telepipe_workers::batch::{process_batch, Received};
use telepipe_workers::clinical::ClinicalConfig;
use telepipe_workers::clinical::{self, ClinicalPorts};
use telepipe_workers::config::{ConsumerConfig, Env};
use telepipe_workers::intake::IntakeConfig;
use telepipe_workers::intake::{self, IntakePorts};
use telepipe_workers::memory::{
    KeywordNlp, MemoryEvents, MemoryQueue, MemoryStore, MemoryTranscriber,
};
use telepipe_workers::metrics::{collect, MemorySink, Metrics};
use telepipe_workers::telemetry::{filter, json_subscriber};

const MARKERS: [&str; 6] = [
    "Quenby",
    "Marisol",
    "zebraquartz",
    "Xylophonia",
    "4417-PHI",
    "glimmerstone",
];

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn word(content: &str, start_ms: u64) -> serde_json::Value {
    serde_json::json!({"start_time": format!("{}.{:03}", start_ms / 1000, start_ms % 1000),
        "end_time": format!("{}.{:03}", (start_ms + 300) / 1000, (start_ms + 300) % 1000),
        "alternatives": [{"confidence": "0.9", "content": content}], "type": "pronunciation"})
}

fn marker_transcript() -> String {
    let sentence = "Marisol Quenby reports zebraquartz syndrome and takes glimmerstone for Xylophonia 4417-PHI";
    let mut items = Vec::new();
    let mut clock = 0;
    for _ in 0..30 {
        for w in sentence.split(' ') {
            items.push(word(w, clock));
            clock += 400;
        }
        items.push(serde_json::json!({"alternatives": [{"confidence": "0.0", "content": "."}], "type": "punctuation"}));
    }
    serde_json::json!({"jobName": "j", "results": {"transcripts": [{"transcript": sentence}], "items": items}}).to_string()
}

fn notification(bucket: &str, key: &str) -> String {
    serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": encode_key(key)}}}]})
    .to_string()
}

fn received(id: &str, body: String) -> Received {
    Received {
        message_id: id.into(),
        receipt_handle: id.into(),
        body,
        receive_count: 1,
        attributes: Default::default(),
    }
}

#[test]
fn no_marker_reaches_logs_or_events() {
    let captured = Captured::default();
    let subscriber = json_subscriber(captured.clone(), filter("trace"));
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let emf = Arc::new(MemorySink::default());
    let metrics = Metrics::new("telepipe", emf.clone());

    let store = MemoryStore::default();
    let events = MemoryEvents::default();
    let queue = MemoryQueue::default();
    let consumer = ConsumerConfig::from_env(&Env::from_pairs(&[
        ("TELEPIPE_QUEUE_URL", "q"),
        ("TELEPIPE_DLQ_URL", "d"),
    ]))
    .unwrap();

    // intake: a good upload and a renamed text file, both named after the patient.
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.extend(vec![0u8; 500]);
    store.insert("rec", "recordings/s-1/Marisol Quenby zebraquartz.wav", wav);
    store.insert(
        "rec",
        "recordings/s-1/Marisol Quenby notes.wav",
        b"Xylophonia glimmerstone 4417-PHI".repeat(10),
    );
    let transcriber = MemoryTranscriber::default();
    let status = telepipe_workers::memory::MemoryStatus::default();
    let intake_ports = IntakePorts {
        store: &store,
        transcriber: &transcriber,
        events: &events,
        status: &status,
    };
    let intake_config =
        IntakeConfig::from_env(&Env::from_pairs(&[("TELEPIPE_TRANSCRIPTS_BUCKET", "tr")])).unwrap();
    let messages = [
        received(
            "m1",
            notification("rec", "recordings/s-1/Marisol Quenby zebraquartz.wav"),
        ),
        received(
            "m2",
            notification("rec", "recordings/s-1/Marisol Quenby notes.wav"),
        ),
        received("m3", notification("rec", "recordings/Marisol Quenby/x.wav")),
    ];
    runtime.block_on(collect(
        metrics.clone(),
        process_batch(
            intake::STAGE,
            &messages,
            &queue,
            &consumer,
            async |body: &str| intake::handle_message(&intake_ports, &intake_config, body).await,
        ),
    ));

    // clinical: a transcript of markers whose entities are markers, and a malformed one.
    store.insert("tr", "transcripts/s-1/job-1.json", marker_transcript());
    store.insert(
        "tr",
        "transcripts/s-1/job-2.json",
        "{\"results\": {\"items\": [Marisol Quenby zebraquartz",
    );
    let nlp = KeywordNlp::new(&[
        (
            "zebraquartz syndrome",
            "MEDICAL_CONDITION",
            "DX_NAME",
            Some("Q99.9"),
        ),
        ("glimmerstone", "MEDICATION", "GENERIC_NAME", Some("4417")),
        ("Xylophonia", "MEDICAL_CONDITION", "DX_NAME", None),
    ]);
    let clinical_ports = ClinicalPorts {
        store: &store,
        nlp: &nlp,
        events: &events,
        status: &status,
    };
    let clinical_config =
        ClinicalConfig::from_env(&Env::from_pairs(&[("TELEPIPE_RESULTS_BUCKET", "res")])).unwrap();
    let messages = [
        received("m4", notification("tr", "transcripts/s-1/job-1.json")),
        received("m5", notification("tr", "transcripts/s-1/job-2.json")),
    ];
    runtime.block_on(collect(
        metrics,
        process_batch(
            clinical::STAGE,
            &messages,
            &queue,
            &consumer,
            async |body: &str| {
                clinical::handle_message(&clinical_ports, &clinical_config, body).await
            },
        ),
    ));

    // The pipeline really carried the markers: entities were found and documents written.
    let doc = store
        .object("res", "clinical/s-1/job-1.json")
        .expect("results written")
        .bytes;
    assert!(String::from_utf8_lossy(&doc).contains("zebraquartz syndrome"));
    assert_eq!(
        queue.dead_letters.lock().unwrap().len(),
        3,
        "rejected, bad session, malformed transcript"
    );

    assert!(
        status.all().len() >= 6,
        "transitions were recorded: {:?}",
        status.all()
    );
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() >= 5, "logging was captured: {logs}");
    assert!(
        logs.contains("\"message_id\":\"m4\"") && logs.contains("\"session_id\":\"s-1\""),
        "ids are logged"
    );
    let published: Vec<String> = events
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.detail.clone())
        .collect();
    assert!(published.len() >= 3);
    let emf_lines = emf.lines();
    assert!(
        emf_lines
            .iter()
            .any(|l| l.contains("ComprehendBilledCharacters"))
            && emf_lines.iter().any(|l| l.contains("\"Rejected\"")),
        "metrics were captured: {emf_lines:?}"
    );
    for line in &emf_lines {
        // Ids are not PHI, but they are not dimensions either (cardinality).
        for id in [
            "s-1",
            "job-1",
            "m4",
            ".wav",
            ".json",
            "recordings/",
            "transcripts/",
        ] {
            assert!(!line.contains(id), "{id} in metrics line {line}");
        }
    }
    for marker in MARKERS {
        let lower = marker.to_lowercase();
        for (n, line) in logs.lines().enumerate() {
            assert!(
                !line.to_lowercase().contains(&lower),
                "marker {marker} in log line {n}: {line}"
            );
        }
        for line in &emf_lines {
            assert!(
                !line.to_lowercase().contains(&lower),
                "marker {marker} in metrics line {line}"
            );
        }
        for detail in &published {
            assert!(
                !detail.to_lowercase().contains(&lower),
                "marker {marker} in event {detail}"
            );
        }
        let recorded = format!("{:?}", status.all()).to_lowercase();
        assert!(
            !recorded.contains(&lower),
            "marker {marker} in the status store"
        );
        for letter in queue.dead_letters.lock().unwrap().iter() {
            assert!(
                !letter.context.to_lowercase().contains(&lower),
                "marker {marker} in dead-letter context"
            );
            assert!(!letter.reason.to_lowercase().contains(&lower));
        }
    }
}

/// The session-facing stages: a booking carrying a patient's number and email, a clinic
/// name and a join link that are all markers, a malformed booking whose number arrives
/// as a JSON number, the reminders it schedules sent (and one failing ambiguously), and
/// a Chime capture event — everything at trace level through the production subscriber.
/// No marker may reach a log line, an event detail or a dead letter's reason or context.
#[test]
fn sessions_notifier_and_capture_leak_no_address_name_or_text_at_trace() {
    use telepipe_workers::capture::CaptureConfig;
    use telepipe_workers::capture::{self, CapturePorts};
    use telepipe_workers::memory::{
        MemoryLedger, MemoryNotifications, MemoryPipelines, MemoryScheduler, MemorySender,
        MemorySessionStore,
    };
    use telepipe_workers::notifier::NotifierConfig;
    use telepipe_workers::notifier::{self, NotifierPorts};
    use telepipe_workers::sessions::SessionsConfig;
    use telepipe_workers::sessions::{self, SessionsPorts};

    const SESSION_MARKERS: [&str; 6] = [
        "0199321",
        "quenby",
        "marisol",
        "zebraquartz",
        "xylophonia",
        "glimmerstone",
    ];
    let captured = Captured::default();
    let subscriber = json_subscriber(captured.clone(), filter("trace,lambda_runtime=trace"));
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queue = MemoryQueue::default();
    let consumer = ConsumerConfig::from_env(&Env::from_pairs(&[
        ("TELEPIPE_QUEUE_URL", "q"),
        ("TELEPIPE_DLQ_URL", "d"),
    ]))
    .unwrap();
    let (store, scheduler, notifications, events) = (
        MemorySessionStore::default(),
        MemoryScheduler::default(),
        MemoryNotifications::default(),
        MemoryEvents::default(),
    );
    let envelope = |detail_type: &str, detail: serde_json::Value| {
        serde_json::json!({"version": "0", "id": "x", "detail-type": detail_type,
            "source": "telehealth.sessions", "account": "1", "time": "2026-03-01T00:00:00Z",
            "region": "us-east-1", "resources": [], "detail": detail})
        .to_string()
    };
    let booking = |address: serde_json::Value| {
        envelope(
            "Session Scheduled",
            serde_json::json!({
                "session_id": "s-9", "version": 1, "start": "2026-03-10T15:00:00Z",
                "duration_minutes": 30, "patient_time_zone": "America/New_York", "locale": "en",
                "clinic_name": "Zebraquartz Clinic", "join_url": "https://visit.example.org/xylophonia",
                "patient": {"reference": "p-1", "channel": "sms", "address": address},
                "clinician": {"reference": "c-1", "channel": "email", "address": "quenby.marisol@example.org"}
            }),
        )
    };
    let sessions_config = SessionsConfig::from_env(&Env::from_pairs(&[])).unwrap();
    let sessions_ports = SessionsPorts {
        store: &store,
        scheduler: &scheduler,
        notifications: &notifications,
        events: &events,
    };
    let messages = [
        received("s1", booking("+15550199321".into())),
        received("s2", booking(15_550_199_321u64.into())),
        received(
            "s3",
            envelope(
                "Session Scheduled",
                serde_json::json!({"session_id": "s-9", "version": 2, "start": "Glimmerstone o'clock"}),
            ),
        ),
    ];
    runtime.block_on(process_batch(
        sessions::STAGE,
        &messages,
        &queue,
        &consumer,
        async |body: &str| {
            sessions::handle_message(
                &sessions_ports,
                &sessions_config,
                body,
                "2026-03-01T12:00:00Z".parse().unwrap(),
            )
            .await
        },
    ));
    let reminders = scheduler.fire_due("2026-03-10T15:00:00Z".parse().unwrap());
    assert!(!reminders.is_empty(), "reminders were scheduled");

    let sender = MemorySender::default();
    let ledger = MemoryLedger::default();
    let notifier_config = NotifierConfig::from_env(&Env::from_pairs(&[])).unwrap();
    let suppressions = telepipe_workers::memory::MemorySuppressions::default();
    let notifier_ports = NotifierPorts {
        store: &store,
        ledger: &ledger,
        sender: &sender,
        events: &events,
        suppressions: &suppressions,
    };
    // The second send fails ambiguously: logged and published as outcome_unknown.
    sender.failures.push(None);
    sender
        .failures
        .push(Some(telepipe_workers::error::PortErrorKind::Timeout));
    let messages: Vec<Received> = reminders
        .iter()
        .enumerate()
        .map(|(i, r)| received(&format!("n{i}"), r.payload.clone()))
        .collect();
    runtime.block_on(process_batch(
        notifier::STAGE,
        &messages,
        &queue,
        &consumer,
        async |body: &str| {
            notifier::handle_message(
                &notifier_ports,
                &notifier_config,
                body,
                "attempt-1",
                "2026-03-09T15:00:00Z".parse().unwrap(),
            )
            .await
        },
    ));
    assert!(
        !sender.sent.lock().unwrap().is_empty(),
        "a reminder went out (and carried the clinic name, as it must)"
    );

    let pipelines = MemoryPipelines::default();
    let listing = MemoryStore::default();
    let capture_config =
        CaptureConfig::from_env(&Env::from_pairs(&[("TELEPIPE_RECORDINGS_BUCKET", "rec")]))
            .unwrap();
    let capture_audit = telepipe_workers::memory::MemoryAudit::default();
    let capture_ports = CapturePorts {
        pipelines: &pipelines,
        listing: &listing,
        events: &events,
        audit: Some(&capture_audit),
        actor: "lambda:capture",
    };
    let capture_event = serde_json::json!({"version": "0", "id": "c", "detail-type": "Chime Media Pipeline State Change",
        "source": "aws.chime", "account": "1", "region": "us-east-1", "resources": [],
        "detail": {"eventType": "chime:MediaPipelineDeleted", "externalMeetingId": "Marisol Quenby",
                   "mediaPipelineId": "e40ee45e-2ed1-408e-9156-f52b8208a491"}})
    .to_string();
    runtime.block_on(process_batch(
        capture::STAGE,
        &[received("c1", capture_event)],
        &queue,
        &consumer,
        async |body: &str| capture::handle_message(&capture_ports, &capture_config, body).await,
    ));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone())
        .unwrap()
        .to_lowercase();
    assert!(
        logs.contains("\"message_id\":\"s1\"") && logs.contains("\"message_id\":\"n0\""),
        "logging was captured: {logs}"
    );
    let letters = queue.dead_letters.lock().unwrap().clone();
    assert_eq!(letters.len(), 2, "the malformed bookings: {letters:?}");
    let published: Vec<String> = events
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.detail.to_lowercase())
        .collect();
    assert!(published.iter().any(|d| d.contains("outcome_unknown")));
    let trail: Vec<String> = capture_audit
        .entries()
        .iter()
        .map(|e| e.to_json().to_lowercase())
        .collect();
    for marker in SESSION_MARKERS {
        for (n, line) in logs.lines().enumerate() {
            assert!(!line.contains(marker), "{marker} in log line {n}: {line}");
        }
        for detail in published.iter().chain(trail.iter()) {
            assert!(
                !detail.contains(marker),
                "{marker} in event or audit entry {detail}"
            );
        }
        for letter in &letters {
            let attributes = format!("{} {}", letter.reason, letter.context).to_lowercase();
            assert!(
                !attributes.contains(marker),
                "{marker} in dead-letter attributes {attributes}"
            );
        }
    }
}

/// Patients' texts: the replies stage (every intent, a malformed message, an unknown
/// sender) and the webhook (signed, unsigned, malformed) at trace level. Neither the
/// number nor the words of a text may reach a log line, an event or a dead letter.
#[test]
fn replies_and_the_webhook_leak_no_number_or_text_at_trace() {
    use telepipe_workers::aws::twilio_webhook::{serve, twilio_signature};
    use telepipe_workers::config::Secret;
    use telepipe_workers::memory::{
        MemoryNotifications, MemoryRefeed, MemorySessionStore, MemorySuppressions,
    };
    use telepipe_workers::replies::{self, PhoneKey, RepliesConfig, RepliesPorts};

    const TEXT_MARKERS: [&str; 4] = ["0188742", "zebraquartz", "glimmerstone", "quenby"];
    let captured = Captured::default();
    let subscriber = json_subscriber(captured.clone(), filter("trace,lambda_runtime=trace"));
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queue = MemoryQueue::default();
    let consumer = ConsumerConfig::from_env(&Env::from_pairs(&[
        ("TELEPIPE_QUEUE_URL", "q"),
        ("TELEPIPE_DLQ_URL", "d"),
    ]))
    .unwrap();
    let (sessions, suppressions, notifications, events) = (
        MemorySessionStore::default(),
        MemorySuppressions::default(),
        MemoryNotifications::default(),
        MemoryEvents::default(),
    );
    let audit = telepipe_workers::memory::MemoryAudit::default();
    let ports = RepliesPorts {
        sessions: &sessions,
        suppressions: &suppressions,
        notifications: &notifications,
        events: &events,
        audit: Some(&audit),
    };
    let config = RepliesConfig {
        phone_key: PhoneKey::new(b"phi-test-key"),
    };
    let text = |id: &str, from: &str, body: &str| {
        received(
            id,
            serde_json::json!({"provider": "twilio", "message_id": format!("SM{id}"),
                "from": from, "to": "+15559990000", "body": body})
            .to_string(),
        )
    };
    let messages = [
        text("r1", "+15550188742", "STOP"),
        text(
            "r2",
            "+15550188742",
            "Zebraquartz glimmerstone, is it serious? Quenby",
        ),
        text("r3", "+15550188742", "confirm"),
        text("r4", "15550188742 Quenby", "START"),
        received(
            "r5",
            "{\"from\": 15550188742, \"body\": \"Glimmerstone\"}".into(),
        ),
    ];
    runtime.block_on(process_batch(
        replies::STAGE,
        &messages,
        &queue,
        &consumer,
        async |body: &str| {
            replies::handle_message(
                &ports,
                &config,
                body,
                "2026-03-01T12:00:00Z".parse().unwrap(),
            )
            .await
        },
    ));

    // The webhook: a signed text, an unsigned one, a malformed signed one.
    let token = Secret::new("tok".into());
    let url = "https://sms.example.org/twilio";
    let params = [
        ("MessageSid", "SM9"),
        ("From", "+15550188742"),
        ("Body", "Glimmerstone zebraquartz"),
    ];
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let form: String = form_urlencoded_body(&params);
    let event = |signature: Option<String>| {
        let mut headers = serde_json::json!({});
        if let Some(signature) = signature {
            headers["x-twilio-signature"] = signature.into();
        }
        serde_json::json!({"headers": headers, "body": form, "isBase64Encoded": false})
    };
    let refeed = MemoryRefeed::default();
    for request in [
        event(Some(twilio_signature("tok", url, &owned))),
        event(None),
        event(Some("AAAA".into())),
    ] {
        runtime.block_on(serve(&request, Some(url), &token, &refeed));
    }
    assert_eq!(
        refeed.sent.lock().unwrap().len(),
        1,
        "the signed text was queued"
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone())
        .unwrap()
        .to_lowercase();
    assert!(
        logs.contains("reply handled"),
        "logging was captured: {logs}"
    );
    let published: Vec<String> = events
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.detail.to_lowercase())
        .collect();
    assert!(published.len() >= 3, "{published:?}");
    let letters = queue.dead_letters.lock().unwrap().clone();
    assert_eq!(letters.len(), 2, "the bad sender and the malformed message");
    let trail: Vec<String> = audit
        .entries()
        .iter()
        .map(|e| e.to_json().to_lowercase())
        .collect();
    assert_eq!(trail.len(), 1, "the opt-out was audited");
    let entry = &audit.entries()[0];
    assert_eq!(entry.action.as_str(), "opted_out");
    assert!(entry.actor.starts_with("patient:"), "{}", entry.actor);
    for marker in TEXT_MARKERS {
        for (n, line) in logs.lines().enumerate() {
            assert!(!line.contains(marker), "{marker} in log line {n}: {line}");
        }
        for detail in published.iter().chain(trail.iter()) {
            assert!(
                !detail.contains(marker),
                "{marker} in event or audit entry {detail}"
            );
        }
        for letter in &letters {
            let attributes = format!("{} {}", letter.reason, letter.context).to_lowercase();
            assert!(!attributes.contains(marker), "{marker} in {attributes}");
        }
    }
}

fn form_urlencoded_body(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                k,
                v.replace('+', "%2B").replace(' ', "+").replace(',', "%2C")
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

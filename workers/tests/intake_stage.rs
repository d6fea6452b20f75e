//! `intake` decisions with in-memory ports: every outcome and error class.

use telepipe_events::s3::encode_key;
use telepipe_workers::config::Env;
use telepipe_workers::error::{ErrorClass, PortErrorKind};
use telepipe_workers::intake::IntakeConfig;
use telepipe_workers::intake::{handle_message, IntakePorts, RecordOutcome};
use telepipe_workers::memory::{MemoryEvents, MemoryStatus, MemoryStore, MemoryTranscriber};
use telepipe_workers::ports::SpeakerMode;

const BUCKET: &str = "recordings-bucket";

fn config() -> IntakeConfig {
    let mut cfg = IntakeConfig::from_env(&Env::from_pairs(&[(
        "TELEPIPE_TRANSCRIPTS_BUCKET",
        "transcripts-bucket",
    )]))
    .unwrap();
    cfg.max_recording_bytes = 1_000_000;
    cfg
}

fn notification(key: &str) -> String {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": encode_key(key), "size": 10, "eTag": "e1", "sequencer": "01"}}
    }]})
    .to_string()
}

fn wav() -> Vec<u8> {
    let mut bytes = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    bytes.extend([
        16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0,
    ]);
    bytes.extend(b"data\x00\x00\x00\x00");
    bytes.extend(vec![0u8; 1000]);
    bytes
}

#[derive(Default)]
struct World {
    store: MemoryStore,
    transcriber: MemoryTranscriber,
    events: MemoryEvents,
    status: MemoryStatus,
}

impl World {
    fn ports(&self) -> IntakePorts<'_, MemoryStore, MemoryTranscriber, MemoryEvents, MemoryStatus> {
        IntakePorts {
            store: &self.store,
            transcriber: &self.transcriber,
            events: &self.events,
            status: &self.status,
        }
    }
}

#[tokio::test]
async fn upload_starts_a_medical_job_with_the_configured_parameters() {
    let world = World::default();
    let key = "recordings/sess-1/visit 1+final.wav";
    world.store.insert(BUCKET, key, wav());
    let outcomes = handle_message(&world.ports(), &config(), &notification(key))
        .await
        .unwrap();
    let [RecordOutcome::Started { job_name }] = outcomes.as_slice() else {
        panic!("{outcomes:?}")
    };
    assert!(job_name.starts_with("sess-1-"));
    let jobs = world.transcriber.jobs.lock().unwrap();
    let job = &jobs[job_name];
    assert_eq!(job.media_uri, format!("s3://{BUCKET}/{key}"));
    assert_eq!(job.media_format, "wav");
    assert_eq!(job.output_bucket, "transcripts-bucket");
    assert_eq!(
        job.output_key,
        format!("transcripts/sess-1/{job_name}.json")
    );
    assert_eq!(
        (job.specialty.as_str(), job.conversation_type.as_str()),
        ("PRIMARYCARE", "CONVERSATION")
    );
    assert_eq!(job.speakers, SpeakerMode::SpeakerLabels { max_speakers: 2 });
    let started = world.events.of_type("Transcription Started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["session_id"], "sess-1");
    assert_eq!(started[0]["already_started"], false);
    assert!(
        !started[0].to_string().contains("visit"),
        "event must not carry the file name"
    );
}

#[tokio::test]
async fn duplicate_delivery_starts_one_job_and_republishes_the_same_event_id() {
    let world = World::default();
    let key = "recordings/s/a.wav";
    world.store.insert(BUCKET, key, wav());
    let body = notification(key);
    handle_message(&world.ports(), &config(), &body)
        .await
        .unwrap();
    let second = handle_message(&world.ports(), &config(), &body)
        .await
        .unwrap();
    assert!(matches!(
        second.as_slice(),
        [RecordOutcome::AlreadyStarted { .. }]
    ));
    assert_eq!(world.transcriber.jobs.lock().unwrap().len(), 1);
    let events = world.events.of_type("Transcription Started");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event_id"], events[1]["event_id"]);
    assert_eq!(events[1]["already_started"], true);
}

#[tokio::test]
async fn new_content_under_the_same_key_gets_a_new_job() {
    let world = World::default();
    let key = "recordings/s/a.wav";
    world.store.insert(BUCKET, key, wav());
    handle_message(&world.ports(), &config(), &notification(key))
        .await
        .unwrap();
    let mut changed = wav();
    changed.push(1);
    world.store.insert(BUCKET, key, changed);
    let outcomes = handle_message(&world.ports(), &config(), &notification(key))
        .await
        .unwrap();
    assert!(matches!(
        outcomes.as_slice(),
        [RecordOutcome::Started { .. }]
    ));
    assert_eq!(world.transcriber.jobs.lock().unwrap().len(), 2);
}

async fn rejected(world: &World, body: &str) -> (String, serde_json::Value) {
    let err = handle_message(&world.ports(), &config(), body)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    let events = world.events.of_type("Recording Rejected");
    assert_eq!(events.len(), 1, "one rejection event");
    assert!(world.transcriber.jobs.lock().unwrap().is_empty());
    (err.reason.to_string(), events[0].clone())
}

#[tokio::test]
async fn renamed_text_file_is_rejected_as_format_mismatch() {
    let world = World::default();
    world.store.insert(
        BUCKET,
        "recordings/s/notes.wav",
        b"Patient notes, not audio.".repeat(20),
    );
    let (reason, event) = rejected(&world, &notification("recordings/s/notes.wav")).await;
    assert_eq!(reason, "format_mismatch");
    assert_eq!(event["reason"], "format_mismatch");
    assert_eq!(event["session_id"], "s");
}

#[tokio::test]
async fn each_bad_input_has_its_reason() {
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("recordings/s/a.txt", Some(wav()), "unsupported_format"),
        ("recordings/s/a.wav", None, "object_missing"),
        ("recordings/s/a.wav", Some(Vec::new()), "empty_object"),
        (
            "recordings/s/a.wav",
            Some(vec![0u8; 1_000_001]),
            "too_large",
        ),
        ("recordings/bad id/a.wav", Some(wav()), "invalid_session_id"),
        ("recordings/../a.wav", Some(wav()), "invalid_session_id"),
        ("elsewhere/s/a.wav", Some(wav()), "outside_prefix"),
        ("recordings/s/", Some(wav()), "outside_prefix"),
    ];
    for (key, bytes, expected) in cases {
        let world = World::default();
        if let Some(bytes) = bytes {
            world.store.insert(BUCKET, key, bytes);
        }
        let (reason, event) = rejected(&world, &notification(key)).await;
        assert_eq!(reason, expected, "{key}");
        assert_eq!(event["reason"], expected, "{key}");
    }
}

#[tokio::test]
async fn undecodable_key_is_rejected_without_a_session() {
    let world = World::default();
    let body = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": "recordings/s/%FF.wav"}}}]})
    .to_string();
    let (reason, event) = rejected(&world, &body).await;
    assert_eq!(reason, "invalid_key");
    assert!(event.get("session_id").is_none());
}

#[tokio::test]
async fn throttling_and_quota_are_retryable_and_publish_nothing() {
    for kind in [
        PortErrorKind::QuotaExceeded,
        PortErrorKind::Throttled,
        PortErrorKind::Unavailable,
        PortErrorKind::Timeout,
    ] {
        let world = World::default();
        world.store.insert(BUCKET, "recordings/s/a.wav", wav());
        world.transcriber.failures.push(Some(kind));
        let err = handle_message(
            &world.ports(),
            &config(),
            &notification("recordings/s/a.wav"),
        )
        .await
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::Retryable, "{kind:?}");
        assert!(world.events.published.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn storage_outage_is_retryable_not_a_rejection() {
    let world = World::default();
    world.store.insert(BUCKET, "recordings/s/a.wav", wav());
    world.store.failures.push(Some(PortErrorKind::Unavailable));
    let err = handle_message(
        &world.ports(),
        &config(),
        &notification("recordings/s/a.wav"),
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable());
    assert!(world.events.of_type("Recording Rejected").is_empty());
}

#[tokio::test]
async fn a_rejection_that_cannot_be_announced_is_retried() {
    let world = World::default();
    world.events.failures.push(Some(PortErrorKind::Throttled));
    let err = handle_message(
        &world.ports(),
        &config(),
        &notification("recordings/s/a.txt"),
    )
    .await
    .unwrap_err();
    assert!(
        err.is_retryable(),
        "the rejection event must be published before the message is parked"
    );
}

#[tokio::test]
async fn test_events_and_deletes_are_ignored_without_error() {
    let world = World::default();
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#;
    assert_eq!(
        handle_message(&world.ports(), &config(), test_event)
            .await
            .unwrap(),
        vec![]
    );
    let delete = serde_json::json!({"Records": [{"eventName": "ObjectRemoved:Delete",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": "recordings/s/a.wav"}}}]})
    .to_string();
    assert_eq!(
        handle_message(&world.ports(), &config(), &delete)
            .await
            .unwrap(),
        vec![RecordOutcome::NotCreated]
    );
    assert!(world.events.published.lock().unwrap().is_empty());
}

#[tokio::test]
async fn chime_capture_artifacts_that_reach_intake_are_acknowledged_not_dead_lettered() {
    let world = World::default();
    for key in [
        "captures/visit-9/audio/2026-12-01-15-00-00-000.mp4",
        "captures/visit-9/meeting-events/2026-12-01-15-00-00-000.txt",
    ] {
        world.store.insert(BUCKET, key, b"chunk".to_vec());
        assert_eq!(
            handle_message(&world.ports(), &config(), &notification(key))
                .await
                .unwrap(),
            vec![RecordOutcome::CaptureArtifact],
            "{key}"
        );
    }
    assert!(world.transcriber.jobs.lock().unwrap().is_empty());
    assert!(world.events.published.lock().unwrap().is_empty());
    assert!(world.status.all().is_empty());
}

#[tokio::test]
async fn vocabulary_and_phi_identification_reach_the_job() {
    let world = World::default();
    world.store.insert(BUCKET, "recordings/s/a.wav", wav());
    let mut config = config();
    config.vocabulary_name = Some("cardiology-terms".into());
    config.identify_phi = true;
    handle_message(&world.ports(), &config, &notification("recordings/s/a.wav"))
        .await
        .unwrap();
    let jobs = world.transcriber.jobs.lock().unwrap();
    let request = jobs.values().next().unwrap();
    assert_eq!(request.vocabulary_name.as_deref(), Some("cardiology-terms"));
    assert!(request.identify_phi);
    assert_eq!(request.language_code, "en-US");
    let bad = IntakeConfig::from_env(&Env::from_pairs(&[
        ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
        ("TELEPIPE_VOCABULARY_NAME", "not a name!"),
    ]))
    .unwrap_err();
    assert_eq!(bad.variable, "TELEPIPE_VOCABULARY_NAME");
}

#[tokio::test]
async fn multi_record_messages_handle_every_record_and_retry_wins() {
    let world = World::default();
    world.store.insert(BUCKET, "recordings/s/a.wav", wav());
    world.store.insert(BUCKET, "recordings/s/b.wav", wav());
    let record = |key: &str| {
        serde_json::json!({"eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": encode_key(key)}}})
    };
    let body = serde_json::json!({"Records": [record("recordings/s/a.wav"), record("recordings/s/x.txt"), record("recordings/s/b.wav")]}).to_string();
    let err = handle_message(&world.ports(), &config(), &body)
        .await
        .unwrap_err();
    assert_eq!(
        err.reason, "unsupported_format",
        "permanent when nothing is retryable"
    );
    assert_eq!(
        world.transcriber.jobs.lock().unwrap().len(),
        2,
        "the good records still ran"
    );

    let world = World::default();
    world.store.insert(BUCKET, "recordings/s/a.wav", wav());
    world.store.insert(BUCKET, "recordings/s/b.wav", wav());
    world.transcriber.failures.push(None);
    world
        .transcriber
        .failures
        .push(Some(PortErrorKind::QuotaExceeded));
    let err = handle_message(&world.ports(), &config(), &body)
        .await
        .unwrap_err();
    assert!(
        err.is_retryable(),
        "a retryable record brings the whole message back"
    );
}

#[tokio::test]
async fn channel_identification_and_kms_are_passed_through() {
    let world = World::default();
    world.store.insert(BUCKET, "recordings/s/a.wav", wav());
    let pairs = [
        ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
        ("TELEPIPE_CHANNEL_IDENTIFICATION", "true"),
        ("TELEPIPE_TRANSCRIPTS_KMS_KEY_ID", "alias/telepipe"),
    ];
    let cfg = IntakeConfig::from_env(&Env::from_pairs(&pairs)).unwrap();
    handle_message(&world.ports(), &cfg, &notification("recordings/s/a.wav"))
        .await
        .unwrap();
    let jobs = world.transcriber.jobs.lock().unwrap();
    let job = jobs.values().next().unwrap();
    assert_eq!(job.speakers, SpeakerMode::ChannelIdentification);
    assert_eq!(job.output_kms_key_id.as_deref(), Some("alias/telepipe"));
}

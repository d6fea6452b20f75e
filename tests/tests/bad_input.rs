//! Malformed messages: every one ends as a dead letter with a clear permanent reason
//! (never a panic, never a silent drop, never a retry loop), through both stages.

use telepipe_workers::batch::{process_batch, Disposition, Received};
use telepipe_workers::clinical::ClinicalConfig;
use telepipe_workers::clinical::{self, ClinicalPorts};
use telepipe_workers::config::{ConsumerConfig, Env};
use telepipe_workers::error::StageError;
use telepipe_workers::intake::IntakeConfig;
use telepipe_workers::intake::{self, IntakePorts};
use telepipe_workers::memory::{
    KeywordNlp, MemoryEvents, MemoryQueue, MemoryStore, MemoryTranscriber,
};

fn record(bucket: &str, raw_key: &str) -> String {
    format!(
        r#"{{"Records":[{{"eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"{bucket}"}},"object":{{"key":"{raw_key}","size":10}}}}}}]}}"#
    )
}

/// (description, body, acceptable reasons for intake, for clinical)
fn corpus() -> Vec<(
    &'static str,
    String,
    &'static [&'static str],
    &'static [&'static str],
)> {
    let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
    let long_key = format!("recordings/s/{}.wav", "a".repeat(2000));
    vec![
        ("not JSON", "this is not json".into(), &["malformed_notification"], &["malformed_notification"]),
        ("empty body", String::new(), &["malformed_notification"], &["malformed_notification"]),
        ("JSON array", "[1,2,3]".into(), &["malformed_notification"], &["malformed_notification"]),
        ("JSON scalar", "42".into(), &["malformed_notification"], &["malformed_notification"]),
        ("empty object", "{}".into(), &["malformed_notification"], &["malformed_notification"]),
        ("no records", r#"{"Records":[]}"#.into(), &["malformed_notification"], &["malformed_notification"]),
        ("records not an array", r#"{"Records":{"a":1}}"#.into(), &["malformed_notification"], &["malformed_notification"]),
        ("record without s3", r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#.into(), &["malformed_notification"], &["malformed_notification"]),
        ("truncated record", r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"obj"#.into(), &["malformed_notification"], &["malformed_notification"]),
        ("key of the wrong type", r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":17}}}]}"#.into(), &["malformed_notification"], &["malformed_notification"]),
        ("size of the wrong type", r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k","size":"x"}}}]}"#.into(), &["malformed_notification"], &["malformed_notification"]),
        ("deeply nested", deep, &["malformed_notification"], &["malformed_notification"]),
        ("dot-dot key", record("b", "recordings%2F..%2F..%2Fetc%2Fpasswd"), &["invalid_session_id", "unsupported_format"], &["unexpected_transcript_key", "invalid_key"]),
        ("NUL in key", record("b", "recordings/s/a%00.wav"), &["invalid_key"], &["invalid_key"]),
        ("non-UTF-8 escapes", record("b", "recordings/s/%FF%FE.wav"), &["invalid_key"], &["invalid_key"]),
        ("2,000-char key", record("b", &long_key), &["invalid_key"], &["invalid_key"]),
        ("empty key", record("b", ""), &["invalid_key"], &["invalid_key"]),
        ("key outside prefix", record("b", "elsewhere%2Fx.json"), &["outside_prefix"], &["unexpected_transcript_key"]),
        ("unicode session", record("b", "recordings/%E6%97%A5%E6%9C%AC/a.json"), &["invalid_session_id"], &["unexpected_transcript_key"]),
        ("missing object", record("b", "transcripts/s/j.json"), &["outside_prefix"], &["transcript_missing"]),
    ]
}

fn consumer() -> ConsumerConfig {
    ConsumerConfig::from_env(&Env::from_pairs(&[
        ("TELEPIPE_QUEUE_URL", "q"),
        ("TELEPIPE_DLQ_URL", "d"),
    ]))
    .unwrap()
}

fn received(n: usize, body: &str) -> Received {
    Received {
        message_id: format!("m{n}"),
        receipt_handle: format!("r{n}"),
        body: body.into(),
        receive_count: 1,
        attributes: Default::default(),
    }
}

fn assert_dead_lettered(
    stage: &str,
    corpus_entry: &str,
    disposition: &Disposition,
    allowed: &[&str],
) {
    match disposition {
        Disposition::DeadLettered { reason } => {
            assert!(
                allowed.contains(&reason.as_str()),
                "{stage}: {corpus_entry}: reason {reason}, expected one of {allowed:?}"
            )
        }
        other => panic!("{stage}: {corpus_entry}: {other:?}"),
    }
}

/// Runs the whole corpus through one stage as a batch; nothing malformed may be retried.
async fn dispose_of_corpus<T>(
    stage: &'static str,
    queue: &MemoryQueue,
    handle: impl AsyncFn(&str) -> Result<T, StageError>,
) -> Vec<Disposition> {
    let messages: Vec<Received> = corpus()
        .iter()
        .enumerate()
        .map(|(n, (_, body, _, _))| received(n, body))
        .collect();
    let (response, dispositions) =
        process_batch(stage, &messages, queue, &consumer(), handle).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{stage}: nothing malformed is retried"
    );
    dispositions
}

#[tokio::test]
async fn every_malformed_message_is_dead_lettered_with_a_reason_by_intake() {
    let (store, transcriber, events, queue) = (
        MemoryStore::default(),
        MemoryTranscriber::default(),
        MemoryEvents::default(),
        MemoryQueue::default(),
    );
    let ports = IntakePorts {
        store: &store,
        transcriber: &transcriber,
        events: &events,
        status: &telepipe_workers::memory::MemoryStatus::default(),
    };
    let config =
        IntakeConfig::from_env(&Env::from_pairs(&[("TELEPIPE_TRANSCRIPTS_BUCKET", "t")])).unwrap();
    let corpus = corpus();
    let dispositions = dispose_of_corpus(intake::STAGE, &queue, async |body: &str| {
        intake::handle_message(&ports, &config, body).await
    })
    .await;
    for ((name, _, allowed, _), disposition) in corpus.iter().zip(&dispositions) {
        assert_dead_lettered("intake", name, disposition, allowed);
    }
    assert_eq!(
        queue.dead_letters.lock().unwrap().len(),
        corpus.len(),
        "each one parked, none dropped"
    );
    assert!(transcriber.jobs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn every_malformed_message_is_dead_lettered_with_a_reason_by_clinical() {
    let (store, events, queue) = (
        MemoryStore::default(),
        MemoryEvents::default(),
        MemoryQueue::default(),
    );
    let nlp = KeywordNlp::clinical();
    let ports = ClinicalPorts {
        store: &store,
        nlp: &nlp,
        events: &events,
        status: &telepipe_workers::memory::MemoryStatus::default(),
    };
    let config =
        ClinicalConfig::from_env(&Env::from_pairs(&[("TELEPIPE_RESULTS_BUCKET", "r")])).unwrap();
    let corpus = corpus();
    let dispositions = dispose_of_corpus(clinical::STAGE, &queue, async |body: &str| {
        clinical::handle_message(&ports, &config, body).await
    })
    .await;
    for ((name, _, _, allowed), disposition) in corpus.iter().zip(&dispositions) {
        assert_dead_lettered("clinical", name, disposition, allowed);
    }
    assert!(events.published.lock().unwrap().is_empty());
}

#[tokio::test]
async fn malformed_transcripts_are_dead_lettered_not_panicked_on() {
    let bodies = [
        "",
        "null",
        "[]",
        r#"{"results": null}"#,
        r#"{"results": {"items": "nope"}}"#,
        r#"{"results": {"items": [{"type": "pronunciation", "start_time": "-1"}]}}"#,
        r#"{"results": {"items": [{"type": "pronunciation", "start_time": "1e400"}]}}"#,
        r#"{"results": {"items": [{"type": "pronunciation", "alternatives": [{"content": 5}]}]}}"#,
        r#"{"results": {"speaker_labels": {"segments": [{"speaker_label": 1}]}}}"#,
    ];
    let (store, events, queue) = (
        MemoryStore::default(),
        MemoryEvents::default(),
        MemoryQueue::default(),
    );
    let nlp = KeywordNlp::clinical();
    let ports = ClinicalPorts {
        store: &store,
        nlp: &nlp,
        events: &events,
        status: &telepipe_workers::memory::MemoryStatus::default(),
    };
    let config =
        ClinicalConfig::from_env(&Env::from_pairs(&[("TELEPIPE_RESULTS_BUCKET", "r")])).unwrap();
    let mut messages = Vec::new();
    for (n, body) in bodies.iter().enumerate() {
        store.insert("t", &format!("transcripts/s/j{n}.json"), *body);
        messages.push(received(
            n,
            &record("t", &format!("transcripts/s/j{n}.json")),
        ));
    }
    let (_, dispositions) = process_batch(
        clinical::STAGE,
        &messages,
        &queue,
        &consumer(),
        async |body: &str| clinical::handle_message(&ports, &config, body).await,
    )
    .await;
    for (body, disposition) in bodies.iter().zip(&dispositions) {
        assert_eq!(
            disposition,
            &Disposition::DeadLettered {
                reason: "malformed_transcript".into()
            },
            "{body}"
        );
    }
}

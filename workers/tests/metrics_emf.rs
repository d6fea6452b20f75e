//! Metrics and correlation ids end to end over in-memory ports: the EMF lines a batch
//! writes are parsed back and checked (namespace, dimension sets, names, units, values),
//! and the correlation id is followed through logs and dead letters.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use telepipe_events::ids::JobName;
use telepipe_events::pipeline::RejectReason;
use telepipe_events::s3::encode_key;
use telepipe_workers::batch::{process_batch, Received};
use telepipe_workers::clinical::ClinicalConfig;
use telepipe_workers::clinical::{self, ClinicalPorts};
use telepipe_workers::config::{ConsumerConfig, Env};
use telepipe_workers::error::Reason;
use telepipe_workers::error::{PortErrorKind, StageError};
use telepipe_workers::intake::IntakeConfig;
use telepipe_workers::intake::{self, IntakePorts};
use telepipe_workers::memory::{
    KeywordNlp, MemoryEvents, MemoryQueue, MemoryStore, MemoryTranscriber,
};
use telepipe_workers::metrics::{collect, MemorySink, Metrics};
use telepipe_workers::synth::{transcript, SynthLabels};
use telepipe_workers::telemetry::{self, filter, json_subscriber, ATTR_CORRELATION_ID};

/// One metric value as CloudWatch would extract it: name, unit, its dimension set with
/// values, and the values.
#[derive(Debug)]
struct Sample {
    name: String,
    unit: String,
    dims: BTreeMap<String, String>,
    values: Vec<f64>,
}

/// Parses EMF lines back, checking the structure CloudWatch requires on the way.
fn samples(lines: &[String], namespace: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in lines {
        let doc: Value = serde_json::from_str(line).expect("an EMF line is one JSON object");
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].as_u64().expect("timestamp in ms") > 1_600_000_000_000);
        for directive in aws["CloudWatchMetrics"].as_array().expect("directives") {
            assert_eq!(directive["Namespace"], namespace);
            for set in directive["Dimensions"].as_array().unwrap() {
                let dims: BTreeMap<String, String> = set
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| {
                        let k = k.as_str().unwrap();
                        let v = doc[k].as_str().expect("dimension values are strings");
                        (k.to_owned(), v.to_owned())
                    })
                    .collect();
                for metric in directive["Metrics"].as_array().unwrap() {
                    let name = metric["Name"].as_str().unwrap();
                    let values = match &doc[name] {
                        Value::Number(n) => vec![n.as_f64().unwrap()],
                        Value::Array(a) => a.iter().map(|v| v.as_f64().unwrap()).collect(),
                        other => panic!("metric {name} has no value: {other}"),
                    };
                    out.push(Sample {
                        name: name.to_owned(),
                        unit: metric["Unit"].as_str().unwrap().to_owned(),
                        dims: dims.clone(),
                        values,
                    });
                }
            }
        }
    }
    out
}

/// Sum and number of values of `name` under exactly the dimensions `dims`.
fn total(samples: &[Sample], name: &str, dims: &[(&str, &str)]) -> (f64, usize) {
    let want: BTreeMap<String, String> = dims
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .filter(|s| s.name == name && s.dims == want)
        .fold((0.0, 0), |(sum, n), s| {
            (sum + s.values.iter().sum::<f64>(), n + s.values.len())
        })
}

fn unit_of<'a>(samples: &'a [Sample], name: &str) -> &'a str {
    &samples.iter().find(|s| s.name == name).unwrap().unit
}

fn consumer() -> ConsumerConfig {
    ConsumerConfig::from_env(&Env::from_pairs(&[
        ("TELEPIPE_QUEUE_URL", "q"),
        ("TELEPIPE_DLQ_URL", "dlq"),
    ]))
    .unwrap()
}

fn message(id: &str, body: &str, receive_count: u32) -> Received {
    Received {
        message_id: id.into(),
        receipt_handle: format!("rh-{id}"),
        body: body.into(),
        receive_count,
        attributes: BTreeMap::new(),
    }
}

async fn scripted(body: &str) -> Result<(), StageError> {
    match body {
        "ok" => Ok(()),
        "retry" => Err(StageError::retryable(
            Reason::Port(PortErrorKind::Throttled),
            "session=s1",
        )),
        "bad" => Err(StageError::permanent(
            Reason::Rejected(RejectReason::FormatMismatch),
            "session=s1",
        )),
        "panic" => panic!("bug"),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_batch_writes_its_outcomes_in_a_few_documents() {
    let sink = Arc::new(MemorySink::default());
    let queue = MemoryQueue::default();
    let mut tagged = message("6", "bad", 1);
    tagged
        .attributes
        .insert(ATTR_CORRELATION_ID.to_owned(), "replayed-0123".to_owned());
    let messages = [
        message("1", "ok", 1),
        message("2", "ok", 2),
        message("3", "retry", 1),
        message("4", "bad", 1),
        message("5", "panic", 1),
        tagged,
        message("7", "retry", 5),
    ];
    collect(
        Metrics::new("telepipe-test", sink.clone()),
        process_batch("intake", &messages, &queue, &consumer(), scripted),
    )
    .await;

    let lines = sink.lines();
    // A document holds one value per dimension: one per error class seen.
    assert_eq!(lines.len(), 3, "{lines:?}");
    let s = samples(&lines, "telepipe-test");
    let stage = [("Stage", "intake")];
    assert_eq!(total(&s, "Processed", &stage), (2.0, 1));
    assert_eq!(total(&s, "Retried", &stage), (1.0, 1));
    assert_eq!(total(&s, "DeadLettered", &stage), (4.0, 1));
    assert_eq!(total(&s, "DeadLetterFailed", &stage), (0.0, 0));
    let by_class = |class| total(&s, "Failed", &[("Stage", "intake"), ("ErrorClass", class)]).0;
    assert_eq!(
        (
            by_class("retryable"),
            by_class("permanent"),
            by_class("panic")
        ),
        (2.0, 2.0, 1.0),
        "retry + exhausted; bad twice; the panic"
    );
    let (latency_sum, latencies) = total(&s, "Latency", &stage);
    assert_eq!(latencies, 7, "one latency per message");
    assert!(latency_sum >= 0.0);
    assert_eq!(unit_of(&s, "Latency"), "Milliseconds");
    assert_eq!(unit_of(&s, "Processed"), "Count");

    // The carried correlation id travels on with the dead letter; others carry none
    // (the scripted stage derives no id).
    let letters = queue.dead_letters.lock().unwrap();
    let tagged = letters.iter().find(|l| l.source_message_id == "6").unwrap();
    assert_eq!(tagged.attributes()[ATTR_CORRELATION_ID], "replayed-0123");
    let plain = letters.iter().find(|l| l.source_message_id == "4").unwrap();
    assert!(!plain.attributes.contains_key(ATTR_CORRELATION_ID));
    assert!(!plain.attributes().contains_key(ATTR_CORRELATION_ID));
}

#[tokio::test]
async fn a_malformed_incoming_correlation_id_is_not_passed_on() {
    let queue = MemoryQueue::default();
    let mut odd = message("8", "bad", 1);
    odd.attributes
        .insert(ATTR_CORRELATION_ID.to_owned(), "not an id!".to_owned());
    // Ten source attributes: the dead letter still fits SQS's limit of 10.
    for n in 0..10 {
        odd.attributes.insert(format!("a{n}"), "v".to_owned());
    }
    process_batch("intake", &[odd], &queue, &consumer(), scripted).await;
    let letters = queue.dead_letters.lock().unwrap();
    let attributes = letters[0].attributes();
    assert!(!attributes.contains_key(ATTR_CORRELATION_ID));
    assert!(attributes.len() <= 10);
}

#[tokio::test]
async fn a_failing_dead_letter_queue_is_counted() {
    let sink = Arc::new(MemorySink::default());
    let queue = MemoryQueue::default();
    queue.failures.push(Some(PortErrorKind::Unavailable));
    collect(
        Metrics::new("ns", sink.clone()),
        process_batch(
            "clinical",
            &[message("9", "bad", 1)],
            &queue,
            &consumer(),
            scripted,
        ),
    )
    .await;
    let s = samples(&sink.lines(), "ns");
    assert_eq!(
        total(&s, "DeadLetterFailed", &[("Stage", "clinical")]).0,
        1.0
    );
    assert_eq!(total(&s, "DeadLettered", &[("Stage", "clinical")]).1, 0);
}

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

fn notification(bucket: &str, key: &str) -> String {
    serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": encode_key(key), "versionId": "v1"}}}]})
    .to_string()
}

#[tokio::test]
async fn stages_count_rejections_comprehend_usage_and_throttles_and_log_one_correlation_id() {
    let captured = Captured::default();
    let _guard =
        tracing::subscriber::set_default(json_subscriber(captured.clone(), filter("debug")));
    let sink = Arc::new(MemorySink::default());
    let metrics = Metrics::new("ns", sink.clone());
    let store = MemoryStore::default();
    let events = MemoryEvents::default();
    let queue = MemoryQueue::default();

    // intake: one good upload, one that is too small to be audio (format mismatch).
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.extend(vec![0u8; 500]);
    store.insert("rec", "recordings/s-1/visit.wav", wav);
    store.insert(
        "rec",
        "recordings/s-1/notes.wav",
        b"plain text, not audio".repeat(4),
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
        message_with("m1", notification("rec", "recordings/s-1/visit.wav")),
        message_with("m2", notification("rec", "recordings/s-1/notes.wav")),
    ];
    collect(
        metrics.clone(),
        process_batch(
            intake::STAGE,
            &messages,
            &queue,
            &consumer(),
            async |body: &str| intake::handle_message(&intake_ports, &intake_config, body).await,
        ),
    )
    .await;
    let job_name = transcriber
        .jobs
        .lock()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let correlation = JobName::parse(&job_name)
        .and_then(|job| job.correlation_id().map(str::to_owned))
        .unwrap();
    assert_eq!(
        correlation,
        telemetry::recording_correlation_id("rec", "recordings/s-1/visit.wav", "v1")
    );

    // clinical: the job's transcript, with one throttled Comprehend answer on the way.
    let transcript_key = format!("transcripts/s-1/{job_name}.json");
    store.insert(
        "tr",
        &transcript_key,
        transcript(400, SynthLabels::Speakers),
    );
    let nlp = KeywordNlp::clinical();
    nlp.failures.push(Some(PortErrorKind::Throttled));
    let clinical_ports = ClinicalPorts {
        status: &status,
        store: &store,
        nlp: &nlp,
        events: &events,
    };
    let mut clinical_config =
        ClinicalConfig::from_env(&Env::from_pairs(&[("TELEPIPE_RESULTS_BUCKET", "res")])).unwrap();
    clinical_config.nlp_retry.initial_interval = std::time::Duration::from_millis(1);
    let messages = [message_with("m3", notification("tr", &transcript_key))];
    collect(
        metrics,
        process_batch(
            clinical::STAGE,
            &messages,
            &queue,
            &consumer(),
            async |body: &str| {
                clinical::handle_message(&clinical_ports, &clinical_config, body).await
            },
        ),
    )
    .await;

    let s = samples(&sink.lines(), "ns");
    assert_eq!(total(&s, "Processed", &[("Stage", "intake")]).0, 1.0);
    assert_eq!(
        total(
            &s,
            "Rejected",
            &[("Stage", "intake"), ("Reason", "format_mismatch")]
        )
        .0,
        1.0
    );
    assert_eq!(total(&s, "Processed", &[("Stage", "clinical")]).0, 1.0);
    assert_eq!(
        total(&s, "Throttles", &[("Api", "Analyze")]).0,
        1.0,
        "KeywordNlp's operation"
    );
    let document: telepipe_events::results::ResultsDocument = serde_json::from_slice(
        &store
            .object("res", &format!("clinical/s-1/{job_name}.json"))
            .unwrap()
            .bytes,
    )
    .unwrap();
    let sent = &document.characters_sent;
    for (api, requests, characters) in [
        (
            "DetectEntitiesV2",
            document.requests.detect_entities_v2,
            sent.detect_entities_v2,
        ),
        (
            "InferICD10CM",
            document.requests.infer_icd10cm,
            sent.infer_icd10cm,
        ),
        (
            "InferRxNorm",
            document.requests.infer_rxnorm,
            sent.infer_rxnorm,
        ),
    ] {
        let dims = [("Api", api)];
        assert_eq!(
            total(&s, "ComprehendRequests", &dims).0,
            f64::from(requests),
            "{api}"
        );
        assert_eq!(
            total(&s, "ComprehendBilledCharacters", &dims).0,
            characters as f64,
            "{api}"
        );
        let units = total(&s, "ComprehendBilledUnits", &dims).0;
        assert!(
            units >= (characters as f64 / 100.0).ceil() && units >= f64::from(requests),
            "{api}"
        );
    }
    // No dimension value is a session id, job name or key.
    for sample in &s {
        for value in sample.dims.values() {
            assert!(
                !value.contains("s-1") && !value.contains(".wav") && !value.contains(&correlation)
            );
        }
    }

    // One correlation id from the upload's intake to its clinical results, in the logs...
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let tagged: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&format!("\"correlation_id\":\"{correlation}\"")))
        .collect();
    assert!(
        tagged
            .iter()
            .any(|l| l.contains("transcription job started")),
        "{logs}"
    );
    assert!(
        tagged
            .iter()
            .any(|l| l.contains("clinical entities extracted")),
        "{logs}"
    );
    // ...in the events a notifier consumes...
    let of = |detail_type: &str| events.of_type(detail_type)[0]["correlation_id"].clone();
    assert_eq!(of("Transcription Started"), correlation.as_str());
    assert_eq!(of("Clinical Entities Extracted"), correlation.as_str());
    // ...and on the rejected upload's event and dead letter, under its own id.
    assert_eq!(
        of("Recording Rejected"),
        telemetry::recording_correlation_id("rec", "recordings/s-1/notes.wav", "v1").as_str()
    );
    let rejected = telemetry::recording_correlation_id("rec", "recordings/s-1/notes.wav", "v1");
    assert!(
        logs.lines().any(|l| l.contains("\"dead-lettered\"")
            && l.contains(&format!("\"correlation_id\":\"{rejected}\""))),
        "the message-level dead-letter line carries the id: {logs}"
    );
    let letters = queue.dead_letters.lock().unwrap();
    assert_eq!(letters.len(), 1);
    let rejected_id = &letters[0].attributes()[ATTR_CORRELATION_ID];
    assert_eq!(
        *rejected_id,
        telemetry::recording_correlation_id("rec", "recordings/s-1/notes.wav", "v1")
    );
}

fn message_with(id: &str, body: String) -> Received {
    message(id, &body, 1)
}

#[test]
fn a_dead_letter_with_a_correlation_id_stays_within_sqs_attribute_limit() {
    let mut attributes: BTreeMap<String, String> =
        (0..10).map(|n| (format!("a{n}"), "v".to_owned())).collect();
    attributes.insert(
        ATTR_CORRELATION_ID.to_owned(),
        "0123456789abcdef01234567".to_owned(),
    );
    let letter = telepipe_workers::ports::DeadLetter {
        body: String::new(),
        source_message_id: "m".into(),
        stage: "intake",
        error_class: "permanent",
        reason: "r".into(),
        context: String::new(),
        receive_count: 1,
        attributes,
    };
    let sent = letter.attributes();
    assert_eq!(sent.len(), 10);
    assert_eq!(sent[ATTR_CORRELATION_ID], "0123456789abcdef01234567");
}

#[tokio::test]
async fn events_carry_the_correlation_id_whatever_drives_the_stage() {
    // Called directly, not through process_batch: the id still reaches the event.
    let store = MemoryStore::default();
    let events = MemoryEvents::default();
    let transcriber = MemoryTranscriber::default();
    let status = telepipe_workers::memory::MemoryStatus::default();
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.extend(vec![0u8; 500]);
    store.insert("rec", "recordings/s-2/a.wav", wav);
    let ports = IntakePorts {
        store: &store,
        transcriber: &transcriber,
        events: &events,
        status: &status,
    };
    let config =
        IntakeConfig::from_env(&Env::from_pairs(&[("TELEPIPE_TRANSCRIPTS_BUCKET", "tr")])).unwrap();
    intake::handle_message(
        &ports,
        &config,
        &notification("rec", "recordings/s-2/a.wav"),
    )
    .await
    .unwrap();
    let started = &events.of_type("Transcription Started")[0];
    let job_name = started["job_name"].as_str().unwrap();
    assert_eq!(
        started["correlation_id"].as_str(),
        JobName::parse(job_name).unwrap().correlation_id()
    );
}

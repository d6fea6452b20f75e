//! The whole pipeline through the local runtime, with deterministic stand-in engines
//! (a synthetic-transcript speech-to-text and the keyword NLP engine) so these run in
//! seconds: dropped recordings to results documents, rejections, crash safety, and the
//! fault-injection run. `real_engines.rs` runs the same path with Whisper and the
//! offline NLP data.

mod common;

use common::{drop_recording, fresh_dir, wav};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use telepipe_events::results::ResultsDocument;
use telepipe_local::faults::{Dice, FailureRates, FlakyNlp, FlakyStt};
use telepipe_local::queue::QueueSpec;
use telepipe_local::runtime::{
    Faults, Pipeline, CLINICAL_DLQ, CLINICAL_QUEUE, INTAKE_DLQ, INTAKE_QUEUE, RESULTS_BUCKET,
    TRANSCRIBE_DLQ,
};
use telepipe_local::status;
use telepipe_local::transcriber::{SpeechToText, SttError};
use telepipe_workers::clinical::parse_transcript_key;
use telepipe_workers::memory::KeywordNlp;
use telepipe_workers::ports::ClinicalNlp;
use telepipe_workers::synth::{transcript, SynthLabels};

/// Writes a synthetic transcript whose length follows the audio's, after `delay`.
struct FakeStt {
    delay: Duration,
}

impl SpeechToText for FakeStt {
    fn transcribe(&self, media: &[u8], _format: &str, _job: &str) -> Result<Vec<u8>, SttError> {
        std::thread::sleep(self.delay);
        Ok(transcript(40 + media.len() % 50, SynthLabels::Speakers).into_bytes())
    }
}

fn results(dir: &Path) -> BTreeMap<String, ResultsDocument> {
    let mut found = BTreeMap::new();
    let root = dir.join("buckets").join(RESULTS_BUCKET).join("clinical");
    for session in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(session.path()).unwrap().flatten() {
            let doc: ResultsDocument =
                serde_json::from_slice(&std::fs::read(file.path()).unwrap()).unwrap();
            found.insert(doc.session_id.clone(), doc);
        }
    }
    found
}

fn open<N: ClinicalNlp, E: SpeechToText>(dir: &Path, nlp: N, stt: E) -> Pipeline<N, E> {
    let mut pipeline = Pipeline::open(dir, nlp, Arc::new(stt)).unwrap();
    // Retries immediately, so tests do not wait out production backoffs.
    pipeline.intake_consumer.retry_base = Duration::ZERO;
    pipeline.clinical_consumer.retry_base = Duration::ZERO;
    pipeline.clinical.nlp_retry.initial_interval = Duration::from_millis(1);
    pipeline.worker.retry_base_ms = 0;
    pipeline
}

#[tokio::test]
async fn dropped_recordings_flow_to_results_documents() {
    let dir = fresh_dir("flow");
    for n in 0..3 {
        drop_recording(&dir, &format!("sess-{n}"), "visit 1.wav", &wav(n));
    }
    let pipeline = open(
        &dir,
        KeywordNlp::clinical(),
        FakeStt {
            delay: Duration::ZERO,
        },
    );
    pipeline.run_until_idle(|_| {}).await.unwrap();
    let docs = results(&dir);
    assert_eq!(
        docs.keys().collect::<Vec<_>>(),
        ["sess-0", "sess-1", "sess-2"]
    );
    for doc in docs.values() {
        assert!(!doc.entities.is_empty());
        assert!(doc
            .entities
            .iter()
            .all(|e| e.speaker.is_some() && e.start_ms.is_some()));
    }
    let statuses = status::recordings(&pipeline.db, &pipeline.queues, None).unwrap();
    assert_eq!(statuses.len(), 3);
    for s in &statuses {
        assert_eq!(s.stage, "extracted", "{s:?}");
        let stages: Vec<&str> = s.timeline.iter().map(|(stage, _)| *stage).collect();
        assert_eq!(stages, ["transcribing", "transcribed", "extracted"]);
    }
    let only = status::recordings(&pipeline.db, &pipeline.queues, Some("sess-1")).unwrap();
    assert_eq!(only.len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_non_audio_file_ends_as_a_dead_letter_with_a_reason_and_a_rejection_event() {
    let dir = fresh_dir("reject");
    drop_recording(
        &dir,
        "sess-x",
        "notes.wav",
        b"These are typed notes, not a recording.",
    );
    let pipeline = open(
        &dir,
        KeywordNlp::clinical(),
        FakeStt {
            delay: Duration::ZERO,
        },
    );
    pipeline.run_until_idle(|_| {}).await.unwrap();
    let dead = pipeline.queues.peek(INTAKE_DLQ).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["telepipe.reason"], "format_mismatch");
    let statuses = status::recordings(&pipeline.db, &pipeline.queues, None).unwrap();
    assert_eq!(
        (statuses[0].stage, statuses[0].error.as_deref()),
        ("rejected", Some("format_mismatch"))
    );
    let rejected: i64 = pipeline
        .db
        .lock()
        .query_row(
            "SELECT COUNT(*) FROM events WHERE detail_type = 'Recording Rejected'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rejected, 1);
    assert!(results(&dir).is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn crashes_mid_processing_lose_nothing() {
    let dir = fresh_dir("crash");
    for n in 0..8 {
        drop_recording(&dir, &format!("sess-{n}"), "visit.wav", &wav(n));
    }
    // Each "crash" abandons a round part-way (as kill -9 would) and drops every handle.
    for crash in 0..4 {
        let pipeline = open(
            &dir,
            KeywordNlp::clinical(),
            FakeStt {
                delay: Duration::from_millis(30),
            },
        );
        pipeline.recover().unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(20 + crash * 25), async {
            loop {
                pipeline.round().await.unwrap();
            }
        })
        .await;
    }
    let pipeline = open(
        &dir,
        KeywordNlp::clinical(),
        FakeStt {
            delay: Duration::ZERO,
        },
    );
    pipeline.recover().unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();
    assert_eq!(
        results(&dir).len(),
        8,
        "every recording reached its results document"
    );
    for queue in [INTAKE_DLQ, CLINICAL_DLQ, TRANSCRIBE_DLQ] {
        assert!(pipeline.queues.peek(queue).unwrap().is_empty(), "{queue}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn fault_run_size() -> usize {
    std::env::var("TELEPIPE_FAULT_RECORDINGS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
}

#[tokio::test]
async fn fault_injection_loses_nothing_and_writes_no_document_twice_with_different_content() {
    let recordings = fault_run_size();
    let dir = fresh_dir("faults");
    for n in 0..recordings {
        drop_recording(&dir, &format!("sess-{n:03}"), "visit.wav", &wav(n));
    }
    let rates = FailureRates {
        retryable: 0.30,
        permanent: 0.05,
    };
    let nlp = FlakyNlp {
        inner: KeywordNlp::clinical(),
        dice: Dice::new(7, rates),
    };
    let stt = FlakyStt {
        inner: FakeStt {
            delay: Duration::ZERO,
        },
        dice: Dice::new(11, rates),
    };
    let mut pipeline = open(&dir, nlp, stt);
    pipeline.faults = Faults { redelivery: 0.20 };
    for queue in [INTAKE_QUEUE, CLINICAL_QUEUE] {
        let dlq = if queue == INTAKE_QUEUE {
            INTAKE_DLQ
        } else {
            CLINICAL_DLQ
        };
        // Redelivered messages come back after a second instead of minutes.
        let spec = QueueSpec {
            name: queue.into(),
            visibility_secs: 1,
            max_receives: 8,
            dead_letter_queue: Some(dlq.into()),
        };
        pipeline.queues.declare(&spec).unwrap();
    }
    pipeline.run_until_idle(|_| {}).await.unwrap();

    let docs = results(&dir);
    let mut parked: BTreeMap<String, String> = BTreeMap::new();
    for message in pipeline.queues.peek(TRANSCRIBE_DLQ).unwrap() {
        let body: serde_json::Value = serde_json::from_str(&message.body).unwrap();
        let key = body["request"]["output_key"].as_str().unwrap().to_owned();
        let (session, _) = parse_transcript_key("transcripts/", &key).unwrap();
        parked.insert(
            session.to_string(),
            message.attributes["telepipe.reason"].clone(),
        );
    }
    for message in pipeline.queues.peek(CLINICAL_DLQ).unwrap() {
        let session = message
            .body
            .split("transcripts%2F")
            .nth(1)
            .and_then(|rest| rest.split("%2F").next())
            .unwrap()
            .to_owned();
        parked.insert(session, message.attributes["telepipe.reason"].clone());
    }
    assert!(
        pipeline.queues.peek(INTAKE_DLQ).unwrap().is_empty(),
        "intake had no injected faults"
    );
    for reason in parked.values() {
        assert!(!reason.is_empty(), "every dead letter has a reason");
    }
    let accounted: BTreeSet<&String> = docs.keys().chain(parked.keys()).collect();
    assert_eq!(
        accounted.len(),
        recordings,
        "{} results + {} dead letters",
        docs.len(),
        parked.len()
    );
    assert!(
        !parked.is_empty() && docs.len() > recordings / 2,
        "the faults were felt: {} parked",
        parked.len()
    );

    // Every results document is the only content ever published for its job.
    let connection = pipeline.db.lock();
    let mut statement = connection
        .prepare("SELECT json_extract(envelope, '$.detail.job_name'), COUNT(DISTINCT event_id) FROM events WHERE detail_type = 'Clinical Entities Extracted' GROUP BY 1")
        .unwrap();
    let rows: Vec<(String, i64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), docs.len());
    for (job, distinct) in rows {
        assert_eq!(distinct, 1, "{job} was written with different contents");
    }
    drop(statement);
    drop(connection);
    println!(
        "fault run: {recordings} recordings → {} results documents, {} dead letters: {parked:?}",
        docs.len(),
        parked.len()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

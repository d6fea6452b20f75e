//! The status store's DynamoDB adapter and the sweeper's AWS adapters against moto: the
//! table exactly as the SAM template declares it (keys, both GSIs), idempotent writes,
//! current state, stuck and since/state queries; GetMedicalTranscriptionJob through
//! the job's life; a sweep that re-feeds a completed job's transcript over SQS.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use std::time::Duration;
use telepipe_tests::{create_queue, moto_context, receive, sqs_client, unique};
use telepipe_workers::aws::{
    AwsContext, DynamoStatus, EventBridgePublisher, SqsSender, TranscribeMedical, BY_STATE_INDEX,
    OPEN_BY_STATE_INDEX,
};
use telepipe_workers::config::{Env, EventsConfig};
use telepipe_workers::error::PortErrorKind;
use telepipe_workers::ports::{JobState, MedicalJobRequest, SpeakerMode, Transcriber};
use telepipe_workers::status::{Deadlines, State, StatusStore, Transition};
use telepipe_workers::sweeper::{sweep, SweepAction, SweeperConfig, SweeperPorts};

const MIN: i64 = 60_000;

/// The status table as `infra/template.yaml` must declare it.
async fn create_status_table(context: &AwsContext) -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&context.sdk);
    let table = unique("telepipe-status");
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let index = |name: &str, hash: &str, range: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash))
            .key_schema(key(range, KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("sk", ScalarAttributeType::S))
        .attribute_definitions(attribute("open_state", ScalarAttributeType::S))
        .attribute_definitions(attribute("since_ms", ScalarAttributeType::N))
        .attribute_definitions(attribute("transition_state", ScalarAttributeType::S))
        .attribute_definitions(attribute("at_ms", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(index(OPEN_BY_STATE_INDEX, "open_state", "since_ms"))
        .global_secondary_indexes(index(BY_STATE_INDEX, "transition_state", "at_ms"))
        .send()
        .await
        .expect("create status table");
    (client, table)
}

fn t(session: &str, recording: &str, attempt: u32, state: State, at: i64) -> Transition {
    Transition::new(session, recording, attempt, state, at)
        .job(recording)
        .object("0011223344556677")
}

#[tokio::test]
async fn the_dynamodb_status_store_conforms() {
    let context = moto_context().await;
    let (client, table) = create_status_table(&context).await;
    let store = DynamoStatus::from_client(client, table, 90);
    telepipe_workers::conformance::status_store(&store, &unique("conformance")).await;
}

#[tokio::test]
async fn transitions_are_idempotent_and_queryable() {
    let context = moto_context().await;
    let (client, table) = create_status_table(&context).await;
    let store = DynamoStatus::from_client(client.clone(), table.clone(), 90);
    let t0 = 1_800_000_000_000;
    let session = unique("sess");

    assert!(store
        .record(&t(&session, "rec-a", 1, State::Received, t0))
        .await
        .unwrap());
    assert!(store
        .record(&t(&session, "rec-a", 1, State::Transcribing, t0 + 1))
        .await
        .unwrap());
    // A duplicate delivery, later: not new, and the first record (and its time) stays.
    assert!(!store
        .record(&t(&session, "rec-a", 1, State::Received, t0 + 5 * MIN))
        .await
        .unwrap());
    let timeline = store.timeline(&session).await.unwrap();
    assert_eq!(timeline.len(), 2);
    assert_eq!(timeline[0].at_ms, t0);

    // A second recording that is done, and one parked as failed.
    for (state, at) in [
        (State::Received, t0),
        (State::Transcribing, t0),
        (State::Transcribed, t0 + MIN),
        (State::Extracting, t0 + MIN),
        (State::Extracted, t0 + 2 * MIN),
    ] {
        store
            .record(&t(&session, "rec-b", 1, state, at))
            .await
            .unwrap();
    }
    let failed = t(&session, "rec-c", 1, State::Failed, t0 + 3 * MIN)
        .failure("permanent", "unsupported_media");
    store.record(&failed).await.unwrap();

    // Only rec-a is open; transcribing is due after the 10-minute look-after age.
    let deadlines = Deadlines::default();
    assert!(store
        .stuck(t0 + 9 * MIN, &deadlines)
        .await
        .unwrap()
        .iter()
        .all(|c| c.session_id != session));
    let stuck: Vec<_> = store
        .stuck(t0 + 11 * MIN, &deadlines)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.session_id == session)
        .collect();
    assert_eq!(stuck.len(), 1);
    assert_eq!(
        (
            stuck[0].recording.as_str(),
            stuck[0].state,
            stuck[0].attempt
        ),
        ("rec-a", State::Transcribing, 1)
    );
    assert_eq!(stuck[0].object_ref.as_deref(), Some("0011223344556677"));

    // A stall mark is recorded once and leaves the state as it was.
    let mark = t(&session, "rec-a", 1, State::Stalled, t0 + 61 * MIN).reason("transcribing");
    assert!(store.record(&mark).await.unwrap());
    assert!(!store.record(&mark).await.unwrap());
    assert_eq!(
        store
            .stuck(t0 + 62 * MIN, &deadlines)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.session_id == session)
            .count(),
        1
    );

    // --since/--state: transitions into failed since t0, and everything since t0+1m.
    let failures: Vec<_> = store
        .query(t0, Some(State::Failed))
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.session_id == session)
        .collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].reason.as_deref(), Some("unsupported_media"));
    assert_eq!(failures[0].error_class.as_deref(), Some("permanent"));
    let recent = store.query(t0 + MIN, None).await.unwrap();
    assert_eq!(
        recent.iter().filter(|t| t.session_id == session).count(),
        // rec-b: transcribed, extracting, extracted; rec-c: failed; rec-a: the stall mark
        5
    );

    // Every item carries the TTL attribute.
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(session.clone()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("R#rec-a".into()),
        )
        .send()
        .await
        .unwrap();
    let item = item.item().expect("current item");
    assert_eq!(
        item["expires_at"].as_n().unwrap(),
        &(t0 / 1000 + 90 * 86_400).to_string()
    );
    assert_eq!(item["open_state"].as_s().unwrap(), "transcribing");
}

#[tokio::test]
async fn a_retry_attempt_supersedes_and_a_stale_step_does_not() {
    let context = moto_context().await;
    let (client, table) = create_status_table(&context).await;
    let store = DynamoStatus::from_client(client, table, 0);
    let session = unique("sess");
    let t0 = 1_800_000_000_000;
    store
        .record(&t(&session, "rec", 1, State::Transcribing, t0))
        .await
        .unwrap();
    store
        .record(
            &t(&session, "rec", 1, State::Failed, t0 + 20 * MIN)
                .failure("retryable", "internal_failure"),
        )
        .await
        .unwrap();
    store
        .record(&t(&session, "rec", 2, State::Transcribing, t0 + 20 * MIN).job("rec-a2"))
        .await
        .unwrap();
    // Clinical's clock is behind the sweeper's: a step forward still wins.
    store
        .record(&t(&session, "rec", 2, State::Transcribed, t0 + 19 * MIN))
        .await
        .unwrap();
    // A redelivered attempt-1 step cannot move it back.
    store
        .record(&t(&session, "rec", 1, State::Transcribing, t0 + 30 * MIN))
        .await
        .unwrap();
    let deadlines = Deadlines::default();
    let stuck = store.stuck(t0 + 40 * MIN, &deadlines).await.unwrap();
    let mine: Vec<_> = stuck.iter().filter(|c| c.session_id == session).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].state, mine[0].attempt), (State::Transcribed, 2));
}

fn job_request(job_name: &str, bucket: &str) -> MedicalJobRequest {
    MedicalJobRequest {
        job_name: job_name.to_owned(),
        media_uri: format!("s3://{bucket}/recordings/s/visit.wav"),
        media_format: "wav".into(),
        output_bucket: bucket.to_owned(),
        output_key: format!("transcripts/s/{job_name}.json"),
        output_kms_key_id: None,
        specialty: "PRIMARYCARE".into(),
        conversation_type: "CONVERSATION".into(),
        speakers: SpeakerMode::SpeakerLabels { max_speakers: 2 },
        language_code: "en-US".into(),
        vocabulary_name: None,
        identify_phi: false,
    }
}

#[tokio::test]
async fn get_medical_job_follows_the_job_and_knows_missing_ones() {
    let context = moto_context().await;
    let transcriber = TranscribeMedical::new(&context);
    let job_name = unique("sess-get-0123456789abcdef01234567");
    transcriber
        .start_medical_job(&job_request(&job_name, "some-bucket"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let job = transcriber.get_medical_job(&job_name).await.unwrap();
        let request = job.request.expect("the job's settings come back");
        assert_eq!(request.media_format, "wav");
        assert_eq!(request.media_uri, "s3://some-bucket/recordings/s/visit.wav");
        assert_eq!(
            request.speakers,
            SpeakerMode::SpeakerLabels { max_speakers: 2 }
        );
        seen.push(job.state.as_str());
    }
    // moto advances a job one status per Get.
    assert_eq!(seen, ["QUEUED", "IN_PROGRESS", "COMPLETED"]);
    let err = transcriber
        .get_medical_job(&unique("never-started"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, PortErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn a_sweep_refeeds_a_completed_job_over_sqs_once() {
    let context = moto_context().await;
    let (client, table) = create_status_table(&context).await;
    let status = DynamoStatus::from_client(client, table, 90);
    let transcriber = TranscribeMedical::new(&context);
    let sqs = sqs_client(&context);
    let (clinical_url, _) = create_queue(&sqs, &unique("clinical")).await;
    let clinical_queue = SqsSender::new(&context, clinical_url.clone());
    let events = EventBridgePublisher::new(
        &context,
        EventsConfig::from_env(&Env::from_pairs(&[])).unwrap(),
    );
    let session = unique("sess");
    let job_name = format!("{session}-0123456789abcdef01234567");
    transcriber
        .start_medical_job(&job_request(&job_name, "transcripts-bucket"))
        .await
        .unwrap();
    let t0 = telepipe_workers::status::now_ms();
    status
        .record(&t(&session, &job_name, 1, State::Transcribing, t0))
        .await
        .unwrap();
    let config = SweeperConfig::from_env(&Env::from_pairs(&[(
        "TELEPIPE_TRANSCRIPTS_BUCKET",
        "transcripts-bucket",
    )]))
    .unwrap();
    let ports = SweeperPorts {
        transcriber: &transcriber,
        events: &events,
        status: &status,
        clinical_queue: &clinical_queue,
    };
    let mut actions = Vec::new();
    for sweep_number in 1..=4 {
        let report = sweep(&ports, &config, t0 + (10 + sweep_number) * MIN)
            .await
            .unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        actions.extend(
            report
                .actions
                .into_iter()
                .filter(|a| format!("{a:?}").contains(&session)),
        );
    }
    // QUEUED, IN_PROGRESS (waiting, within the deadline), COMPLETED → re-fed; then done.
    assert_eq!(
        actions,
        [
            SweepAction::Waiting {
                recording: job_name.clone()
            },
            SweepAction::Waiting {
                recording: job_name.clone()
            },
            SweepAction::Refed {
                recording: job_name.clone(),
                job_name: job_name.clone()
            },
        ]
    );
    let messages = receive(&sqs, &clinical_url, 2, Duration::from_secs(3)).await;
    assert_eq!(messages.len(), 1);
    let body: serde_json::Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    let key = body["Records"][0]["s3"]["object"]["key"].as_str().unwrap();
    assert_eq!(
        telepipe_events::s3::decode_key(key).unwrap(),
        format!("transcripts/{session}/{job_name}.json")
    );
    let timeline = status.timeline(&session).await.unwrap();
    assert_eq!(timeline.last().unwrap().state, State::Transcribed);
    let JobState::Completed { .. } = transcriber.get_medical_job(&job_name).await.unwrap().state
    else {
        panic!("completed")
    };
}

//! The SQS batch driver: partial failures, immediate dead-lettering with reasons,
//! visibility backoff, exhausted retries, panics, and failures of the queue itself.

use std::collections::BTreeMap;
use std::time::Duration;
use telepipe_events::pipeline::RejectReason;
use telepipe_workers::batch::{backoff, process_batch, Disposition, Received};
use telepipe_workers::config::{ConsumerConfig, Env};
use telepipe_workers::error::Reason;
use telepipe_workers::error::{PortErrorKind, StageError};
use telepipe_workers::memory::MemoryQueue;

fn config() -> ConsumerConfig {
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
        attributes: BTreeMap::from([("trace".to_owned(), "t-1".to_owned())]),
    }
}

/// A stage whose verdict is written in the message body.
async fn scripted(body: &str) -> Result<(), StageError> {
    match body {
        "ok" => Ok(()),
        "retry" => Err(StageError::retryable(
            Reason::Port(PortErrorKind::Throttled),
            "session=s1",
        )),
        "bad" => Err(StageError::permanent(
            Reason::Rejected(RejectReason::FormatMismatch),
            "session=s1 object_ref=ab12",
        )),
        "panic" => panic!("bug"),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn each_message_is_disposed_of_by_its_class() {
    let queue = MemoryQueue::default();
    let messages = [
        message("1", "ok", 1),
        message("2", "retry", 1),
        message("3", "bad", 1),
        message("4", "panic", 1),
        message("5", "retry", 5),
    ];
    let (response, dispositions) =
        process_batch("intake", &messages, &queue, &config(), scripted).await;

    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        ["2"],
        "only the retryable message stays on the queue"
    );
    assert_eq!(dispositions[0], Disposition::Done);
    assert!(matches!(dispositions[1], Disposition::RetryLater { .. }));
    assert_eq!(
        dispositions[2],
        Disposition::DeadLettered {
            reason: "format_mismatch".into()
        }
    );
    assert_eq!(
        dispositions[3],
        Disposition::DeadLettered {
            reason: "worker_panic".into()
        }
    );
    assert_eq!(
        dispositions[4],
        Disposition::DeadLettered {
            reason: "retries_exhausted:throttled".into()
        }
    );

    let letters = queue.dead_letters.lock().unwrap();
    assert_eq!(letters.len(), 3);
    assert_eq!(letters[0].body, "bad");
    assert_eq!(
        (letters[0].stage, letters[0].error_class),
        ("intake", "permanent")
    );
    assert_eq!(letters[0].context, "session=s1 object_ref=ab12");
    assert_eq!(
        letters[0].attributes["trace"], "t-1",
        "source attributes are kept for replay"
    );
    assert_eq!(letters[2].error_class, "retryable");
    assert_eq!(letters[2].receive_count, 5);

    let postponed = queue.postponed.lock().unwrap();
    assert_eq!(postponed.len(), 1);
    assert_eq!(postponed[0].0, "rh-2");
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_sent_keeps_the_message() {
    let queue = MemoryQueue::default();
    queue.failures.push(Some(PortErrorKind::Unavailable));
    let (response, dispositions) = process_batch(
        "clinical",
        &[message("9", "bad", 1)],
        &queue,
        &config(),
        scripted,
    )
    .await;
    assert_eq!(dispositions, [Disposition::Failed]);
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "never deleted without being parked"
    );
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap() {
    let cfg = config();
    for _ in 0..50 {
        let first = backoff(&cfg, 1);
        assert!(
            (Duration::from_secs(15)..=Duration::from_secs(30)).contains(&first),
            "{first:?}"
        );
        let third = backoff(&cfg, 3);
        assert!(
            (Duration::from_secs(60)..=Duration::from_secs(120)).contains(&third),
            "{third:?}"
        );
        assert!(backoff(&cfg, 40) <= Duration::from_secs(900));
    }
}

#[test]
fn partial_batch_response_has_lambdas_field_names() {
    let mut response = telepipe_workers::batch::BatchResponse::default();
    response.add_failure("m1".to_owned());
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"batchItemFailures":[{"itemIdentifier":"m1"}]}"#
    );
}

#[test]
fn lambda_sqs_records_become_received_messages() {
    let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(serde_json::json!({"Records": [{
        "messageId": "m1", "receiptHandle": "rh", "body": "{}", "attributes": {"ApproximateReceiveCount": "3"},
        "messageAttributes": {"trace": {"stringValue": "t", "dataType": "String"}},
        "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "eventSource": "aws:sqs", "awsRegion": "us-east-1"}]}))
    .unwrap();
    let received = Received::from_lambda(event.records.into_iter().next().unwrap()).unwrap();
    assert_eq!(
        (received.message_id.as_str(), received.receive_count),
        ("m1", 3)
    );
    assert_eq!(received.attributes["trace"], "t");
}

#[tokio::test]
async fn nothing_is_started_past_the_start_limit_and_it_stays_queued() {
    let queue = telepipe_workers::memory::MemoryQueue::default();
    let config = telepipe_workers::config::ConsumerConfig::from_env(
        &telepipe_workers::config::Env::from_pairs(&[
            ("TELEPIPE_QUEUE_URL", "q"),
            ("TELEPIPE_DLQ_URL", "d"),
        ]),
    )
    .unwrap();
    let messages: Vec<telepipe_workers::batch::Received> = ["m1", "m2"]
        .iter()
        .map(|id| telepipe_workers::batch::Received {
            message_id: (*id).into(),
            receipt_handle: (*id).into(),
            body: "{}".into(),
            receive_count: 1,
            attributes: Default::default(),
        })
        .collect();
    let started = std::sync::atomic::AtomicUsize::new(0);
    let (response, dispositions) = telepipe_workers::batch::process_batch_before(
        "notifier",
        &messages,
        &queue,
        &config,
        Some(std::time::Instant::now()),
        async |_body: &str| {
            started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<(), telepipe_workers::error::StageError>(())
        },
    )
    .await;
    assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        dispositions,
        [
            telepipe_workers::batch::Disposition::NotStarted,
            telepipe_workers::batch::Disposition::NotStarted
        ]
    );
    assert_eq!(response.batch_item_failures.len(), 2);
    assert!(queue.postponed.lock().unwrap().is_empty(), "untouched");
}

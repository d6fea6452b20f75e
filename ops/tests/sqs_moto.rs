//! The SQS adapter and the replay against a moto server (`TELEPIPE_MOTO_URL`, or one the
//! harness starts): listing with sources, peeking, filters, dry run, copy and move,
//! attributes and FIFO ids kept, and an interrupted replay re-run without loss or doubles.
//! Dead letters are parked by the workers' own SQS adapter, as in production.

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use telepipe_ops::journal::FileJournal;
use telepipe_ops::memory::{Fault, Faulty};
use telepipe_ops::port::{DlqAdmin, Outgoing};
use telepipe_ops::replay::{replay, Mode, ReplayOptions, ReplayReport, ATTR_REPLAYED_FROM};
use telepipe_ops::sqs::SqsDlqAdmin;
use telepipe_tests::{moto_context, receive, sqs_client, unique};
use telepipe_workers::aws::SqsQueue;
use telepipe_workers::ports::{DeadLetter, MessageQueue};

struct Pair {
    sqs: aws_sdk_sqs::Client,
    admin: SqsDlqAdmin,
    source: String,
    dlq: String,
    dlq_name: String,
    journal: PathBuf,
}

impl Pair {
    /// A source queue with a redrive policy onto `{source}-dlq` (suffix `.fifo` for FIFO).
    async fn new(fifo: bool) -> Self {
        let sqs = sqs_client(&moto_context().await);
        let base = unique("ops");
        let suffix = if fifo { ".fifo" } else { "" };
        let (source, dlq_name) = (format!("{base}{suffix}"), format!("{base}-dlq{suffix}"));
        let create = |name: String| {
            let sqs = sqs.clone();
            async move {
                let mut request = sqs.create_queue().queue_name(&name);
                if fifo {
                    request = request.attributes(QueueAttributeName::FifoQueue, "true");
                }
                request
                    .send()
                    .await
                    .expect("create queue")
                    .queue_url
                    .unwrap()
            }
        };
        let dlq = create(dlq_name.clone()).await;
        let source = create(source).await;
        let admin = SqsDlqAdmin::new(sqs.clone());
        let arn = admin.arn(&dlq).await.unwrap();
        sqs.set_queue_attributes()
            .queue_url(&source)
            .attributes(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": "5"}).to_string(),
            )
            .send()
            .await
            .unwrap();
        let journal = std::env::temp_dir().join(format!("telepipe-ops-test-{dlq_name}.jsonl"));
        let _ = std::fs::remove_file(&journal);
        Self {
            sqs,
            admin,
            source,
            dlq,
            dlq_name,
            journal,
        }
    }

    /// Parks a message the way the workers do.
    async fn park(&self, body: &str, stage: &'static str, class: &'static str, reason: &str) {
        let queue = SqsQueue::from_client(self.sqs.clone(), self.source.clone(), self.dlq.clone());
        let letter = DeadLetter {
            body: body.into(),
            source_message_id: "source-id".into(),
            stage,
            error_class: class,
            reason: reason.into(),
            context: "session=s".into(),
            receive_count: 3,
            attributes: BTreeMap::from([("tenant".into(), "t1".into())]),
        };
        queue.dead_letter(&letter).await.expect("dead letter");
    }

    fn options(&self) -> ReplayOptions {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut options = ReplayOptions::new(&self.dlq, &self.dlq_name, &self.source, now);
        options.idle_receives = 1;
        options.visibility_secs = 60;
        options
    }

    async fn replay_with<A: DlqAdmin>(
        &self,
        admin: &A,
        options: &ReplayOptions,
    ) -> Result<ReplayReport, String> {
        let mut journal = FileJournal::open(&self.journal).unwrap();
        replay(admin, &mut journal, options, &mut |_| {})
            .await
            .map_err(|f| f.error.to_string())
    }

    async fn replay(&self, options: &ReplayOptions) -> ReplayReport {
        self.replay_with(&self.admin, options).await.unwrap()
    }

    /// Everything on `url`, received and deleted (so counts are exact).
    async fn drain(&self, url: &str, want: usize) -> Vec<aws_sdk_sqs::types::Message> {
        let messages = receive(&self.sqs, url, want, Duration::from_secs(3)).await;
        for m in &messages {
            self.sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        messages
    }

    async fn depth(&self, url: &str) -> u64 {
        self.admin.find(url).await.unwrap().depth
    }
}

fn sorted_bodies(messages: &[aws_sdk_sqs::types::Message]) -> Vec<String> {
    let mut bodies: Vec<String> = messages
        .iter()
        .map(|m| m.body().unwrap().to_owned())
        .collect();
    bodies.sort();
    bodies
}

fn notification(session: &str, i: usize) -> String {
    serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "rec"}, "object": {"key": format!("recordings/{session}/Patient+Name+{i}.wav")}}
    }]})
    .to_string()
}

#[tokio::test]
async fn list_and_peek_show_queues_sources_and_reasons_without_bodies() {
    let pair = Pair::new(false).await;
    pair.park(
        &notification("sess-1", 0),
        "intake",
        "permanent",
        "too_large",
    )
    .await;
    let listed = pair.admin.list().await.unwrap();
    let info = listed
        .iter()
        .find(|i| i.queue == pair.dlq)
        .expect("the DLQ is listed");
    assert_eq!(info.source.as_deref(), Some(pair.source.as_str()));
    assert_eq!(info.depth, 1);
    assert!(
        !listed.iter().any(|i| i.queue == pair.source),
        "sources are not DLQs"
    );
    let peeked = pair.admin.peek(&pair.dlq, 10).await.unwrap();
    assert_eq!(peeked.len(), 1);
    let dead = telepipe_ops::message::DeadLetterInfo::of(&peeked[0]);
    assert_eq!(
        (
            dead.stage.as_deref(),
            dead.error_class.as_deref(),
            dead.reason.as_str()
        ),
        (Some("intake"), Some("permanent"), "too_large")
    );
    assert_eq!(
        telepipe_ops::message::summarize(&peeked[0].body).session_ids,
        ["sess-1"]
    );
    // Peeking released the message: it is still there and visible.
    assert_eq!(pair.drain(&pair.dlq, 1).await.len(), 1);
}

#[tokio::test]
async fn filtered_move_keeps_attributes_and_leaves_the_rest_parked() {
    let pair = Pair::new(false).await;
    for i in 0..3 {
        pair.park(&notification("s1", i), "intake", "retryable", "throttled")
            .await;
    }
    pair.park(
        &notification("s2", 9),
        "clinical",
        "permanent",
        "bad_transcript",
    )
    .await;
    let mut options = pair.options();
    options.filter.stage = Some("intake".into());
    options.filter.error_class = Some("retryable".into());
    options.filter.session = Some("s1".into());
    let report = pair.replay(&options).await;
    assert_eq!((report.scanned, report.sent, report.deleted), (4, 3, 3));
    let moved = pair.drain(&pair.source, 3).await;
    assert_eq!(moved.len(), 3);
    let attributes = moved[0].message_attributes().unwrap();
    let value = |name: &str| attributes[name].string_value().unwrap().to_owned();
    assert_eq!(value("tenant"), "t1");
    assert_eq!(value("telepipe.stage"), "intake");
    assert_eq!(value("telepipe.reason"), "throttled");
    assert!(value("telepipe.dead-letter").contains("\"receive_count\":3"));
    assert_eq!(value(ATTR_REPLAYED_FROM), pair.dlq_name);
    let left = pair.drain(&pair.dlq, 2).await;
    assert_eq!(sorted_bodies(&left), [notification("s2", 9)]);
}

#[tokio::test]
async fn dry_run_moves_nothing_and_copy_keeps_the_originals() {
    let pair = Pair::new(false).await;
    for i in 0..4 {
        pair.park(&format!("body-{i}"), "intake", "retryable", "throttled")
            .await;
    }
    let mut options = pair.options();
    options.dry_run = true;
    let report = pair.replay(&options).await;
    assert_eq!((report.planned.len(), report.sent), (4, 0));
    assert_eq!(pair.depth(&pair.source).await, 0);
    // Released at the end of the dry run: all visible again at once (received here with
    // a zero visibility timeout, so they stay visible).
    assert_eq!(pair.admin.receive(&pair.dlq, 10, 0).await.unwrap().len(), 4);
    let mut options = pair.options();
    options.mode = Mode::Copy;
    let report = pair.replay(&options).await;
    assert_eq!((report.sent, report.deleted), (4, 0));
    assert_eq!(pair.depth(&pair.dlq).await, 4, "copy keeps the originals");
    let again = pair.replay(&options).await;
    assert_eq!(
        (again.sent, again.already_sent),
        (0, 4),
        "the journal stops a second copy"
    );
    assert_eq!(
        sorted_bodies(&pair.drain(&pair.source, 4).await),
        ["body-0", "body-1", "body-2", "body-3"]
    );
}

#[tokio::test]
async fn fifo_group_and_deduplication_ids_are_kept() {
    let pair = Pair::new(true).await;
    for i in 0..3 {
        pair.admin
            .send(
                &pair.dlq,
                &Outgoing {
                    body: format!("fifo-{i}"),
                    attributes: BTreeMap::from([("telepipe.stage".into(), "intake".into())]),
                    group_id: Some(format!("group-{}", i % 2)),
                    dedup_id: Some(format!("dedup-{i}")),
                },
            )
            .await
            .unwrap();
    }
    let info = pair.admin.find(&pair.dlq).await.unwrap();
    assert!(info.fifo);
    assert_eq!(info.source.as_deref(), Some(pair.source.as_str()));
    let report = pair.replay(&pair.options()).await;
    assert_eq!(report.sent, 3);
    let moved = pair.drain(&pair.source, 3).await;
    assert_eq!(moved.len(), 3);
    for m in &moved {
        let i: usize = m.body().unwrap()["fifo-".len()..].parse().unwrap();
        let system = m.attributes().unwrap();
        assert_eq!(
            system[&MessageSystemAttributeName::MessageGroupId],
            format!("group-{}", i % 2)
        );
        assert_eq!(
            system[&MessageSystemAttributeName::MessageDeduplicationId],
            format!("dedup-{i}")
        );
    }
}

#[tokio::test]
async fn an_interrupted_replay_rerun_loses_and_doubles_nothing() {
    let pair = Pair::new(false).await;
    let n = 25;
    for i in 0..n {
        pair.park(&format!("body-{i:02}"), "intake", "retryable", "throttled")
            .await;
    }
    // First run: killed between a send and its delete after 7 messages.
    let faulty = Faulty::new(pair.admin.clone(), Fault::DeleteFailsAfter(7));
    let error = pair
        .replay_with(&faulty, &pair.options())
        .await
        .unwrap_err();
    assert!(error.contains("retryable"), "{error}");
    // Second run: the answer to a send is lost after 5 more (sent, but not journaled as such).
    let faulty = Faulty::new(pair.admin.clone(), Fault::SendLostAnswerAfter(5));
    pair.replay_with(&faulty, &pair.options())
        .await
        .unwrap_err();
    // Third run: no faults.
    let report = pair.replay(&pair.options()).await;
    assert_eq!(
        report.uncertain.len(),
        1,
        "the lost answer is reported, not resent"
    );
    let mut expected: Vec<String> = (0..n).map(|i| format!("body-{i:02}")).collect();
    let target = pair.drain(&pair.source, n).await;
    let parked = pair.drain(&pair.dlq, 1).await;
    assert_eq!(parked.len(), 1);
    // Each body exactly once on the target; the uncertain one (which did arrive) also
    // still parked: nothing lost, nothing doubled by the tool.
    assert_eq!(sorted_bodies(&target), expected);
    expected.retain(|b| b == parked[0].body().unwrap());
    assert_eq!(expected.len(), 1);
}

/// Throughput of a move against moto (not a test of correctness; run with --ignored).
#[tokio::test]
#[ignore]
async fn bench_replay_throughput() {
    let n = 200;
    let mut rates = Vec::new();
    for _ in 0..3 {
        let pair = Pair::new(false).await;
        for i in 0..n {
            pair.park(&format!("body-{i}"), "intake", "retryable", "throttled")
                .await;
        }
        let started = Instant::now();
        let report = pair.replay(&pair.options()).await;
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(report.sent, n);
        rates.push(n as f64 / elapsed);
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "replay move against moto: {:?} messages/s, median {:.1}",
        rates.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>(),
        rates[1]
    );
}

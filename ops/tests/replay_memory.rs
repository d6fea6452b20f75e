//! The replay algorithm over the in-memory adapter: filters, dry run, copy and move, max,
//! rate, attributes and FIFO ids, and interruption at each step followed by a re-run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use telepipe_ops::journal::{MemoryJournal, State};
use telepipe_ops::memory::{Fault, Faulty, MemoryQueues};
use telepipe_ops::message::Filter;
use telepipe_ops::port::{DlqAdmin, Outgoing};
use telepipe_ops::replay::{
    replay, Mode, ReplayFailure, ReplayOptions, ReplayReport, ATTR_REPLAYED_FROM, ATTR_REPLAY_COUNT,
};
use telepipe_workers::ports::DeadLetter;

fn notification(session: &str) -> String {
    serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "rec"}, "object": {"key": format!("recordings/{session}/visit.wav")}}
    }]})
    .to_string()
}

fn letter(body: &str, stage: &'static str, class: &'static str, reason: &str) -> Outgoing {
    let letter = DeadLetter {
        body: body.into(),
        source_message_id: "src".into(),
        stage,
        error_class: class,
        reason: reason.into(),
        context: "ids".into(),
        receive_count: 2,
        attributes: BTreeMap::from([("tenant".into(), "t1".into())]),
    };
    Outgoing {
        body: body.into(),
        attributes: letter.attributes(),
        group_id: None,
        dedup_id: None,
    }
}

/// `n` dead letters with distinct bodies on `intake-dlq`.
fn parked(n: usize) -> MemoryQueues {
    let queues = MemoryQueues::new(&["intake", "intake-dlq"]);
    for i in 0..n {
        queues.put(
            "intake-dlq",
            &letter(&format!("body-{i}"), "intake", "retryable", "throttled"),
            Duration::from_secs(60),
        );
    }
    queues
}

fn options() -> ReplayOptions {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut options = ReplayOptions::new("intake-dlq", "intake-dlq", "intake", now);
    options.idle_receives = 1;
    options
}

async fn run<A: DlqAdmin>(
    admin: &A,
    journal: &mut MemoryJournal,
    options: &ReplayOptions,
) -> Result<ReplayReport, ReplayFailure> {
    replay(admin, journal, options, &mut |_| {}).await
}

fn bodies(queues: &MemoryQueues, queue: &str) -> Vec<String> {
    let mut bodies: Vec<String> = queues.all(queue).into_iter().map(|m| m.body).collect();
    bodies.sort();
    bodies
}

fn all_bodies(n: usize) -> Vec<String> {
    let mut bodies: Vec<String> = (0..n).map(|i| format!("body-{i}")).collect();
    bodies.sort();
    bodies
}

#[tokio::test]
async fn move_sends_every_message_once_with_its_attributes_and_journals_each_step() {
    let queues = parked(12);
    let mut journal = MemoryJournal::default();
    let report = run(&queues, &mut journal, &options()).await.unwrap();
    assert_eq!((report.scanned, report.sent, report.deleted), (12, 12, 12));
    assert!(queues.all("intake-dlq").is_empty());
    assert_eq!(bodies(&queues, "intake"), all_bodies(12));
    let moved = &queues.all("intake")[0];
    assert_eq!(moved.attributes["tenant"], "t1");
    assert_eq!(moved.attributes["telepipe.stage"], "intake");
    assert_eq!(moved.attributes[ATTR_REPLAYED_FROM], "intake-dlq");
    assert_eq!(moved.attributes[ATTR_REPLAY_COUNT], "1");
    for state in [State::Intent, State::Sent, State::Deleted] {
        assert_eq!(
            journal.entries.iter().filter(|e| e.state == state).count(),
            12
        );
    }
    assert_eq!(journal.entries[0].state, State::Intent);
    assert!(journal
        .entries
        .iter()
        .filter(|e| e.state == State::Sent)
        .all(|e| e.new_message_id.is_some()));
    let audit = serde_json::to_string(&journal.entries).unwrap();
    assert!(
        !audit.contains("body-"),
        "the journal never holds bodies: {audit}"
    );
}

#[tokio::test]
async fn filters_take_only_matching_messages_and_leave_the_rest_visible() {
    let queues = MemoryQueues::new(&["intake", "intake-dlq"]);
    let old = Duration::from_secs(7_200);
    queues.put(
        "intake-dlq",
        &letter(&notification("s1"), "intake", "retryable", "throttled"),
        old,
    );
    queues.put(
        "intake-dlq",
        &letter(&notification("s2"), "intake", "permanent", "too_large"),
        old,
    );
    queues.put(
        "intake-dlq",
        &letter(&notification("s1"), "clinical", "retryable", "throttled"),
        Duration::from_secs(10),
    );
    let cases: Vec<(Filter, usize)> = vec![
        (
            Filter {
                stage: Some("intake".into()),
                ..Default::default()
            },
            2,
        ),
        (
            Filter {
                error_class: Some("permanent".into()),
                ..Default::default()
            },
            1,
        ),
        (
            Filter {
                reason_prefix: Some("thrott".into()),
                ..Default::default()
            },
            2,
        ),
        (
            Filter {
                session: Some("s1".into()),
                ..Default::default()
            },
            2,
        ),
        (
            Filter {
                older_than: Some(Duration::from_secs(3_600)),
                ..Default::default()
            },
            2,
        ),
        (
            Filter {
                newer_than: Some(Duration::from_secs(60)),
                ..Default::default()
            },
            1,
        ),
        (
            Filter {
                attributes: vec![("telepipe.reason".into(), "too_large".into())],
                ..Default::default()
            },
            1,
        ),
    ];
    for (filter, want) in cases {
        let mut options = options();
        options.filter = filter.clone();
        options.dry_run = true;
        let report = run(&queues, &mut MemoryJournal::default(), &options)
            .await
            .unwrap();
        assert_eq!(report.scanned, 3, "{filter:?}");
        assert_eq!(report.planned.len(), want, "{filter:?}");
    }
    let mut options = options();
    options.filter.session = Some("s2".into());
    let report = run(&queues, &mut MemoryJournal::default(), &options)
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(queues.all("intake-dlq").len(), 2);
    // The two left were released: a new receive sees them at once.
    assert_eq!(queues.receive("intake-dlq", 10, 30).await.unwrap().len(), 2);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let queues = parked(5);
    let mut options = options();
    options.dry_run = true;
    let mut journal = MemoryJournal::default();
    let report = run(&queues, &mut journal, &options).await.unwrap();
    assert_eq!((report.planned.len(), report.sent), (5, 0));
    assert!(report.planned[0].reason == "throttled" && journal.entries.is_empty());
    assert!(queues.all("intake").is_empty());
    assert_eq!(queues.receive("intake-dlq", 10, 30).await.unwrap().len(), 5);
}

#[tokio::test]
async fn copy_keeps_the_originals_and_a_rerun_sends_nothing_twice() {
    let queues = parked(4);
    let mut options = options();
    options.mode = Mode::Copy;
    let mut journal = MemoryJournal::default();
    let report = run(&queues, &mut journal, &options).await.unwrap();
    assert_eq!((report.sent, report.deleted), (4, 0));
    assert_eq!(bodies(&queues, "intake-dlq"), all_bodies(4));
    assert_eq!(bodies(&queues, "intake"), all_bodies(4));
    let again = run(&queues, &mut journal, &options).await.unwrap();
    assert_eq!((again.sent, again.already_sent), (0, 4));
    assert_eq!(queues.all("intake").len(), 4);
}

#[tokio::test]
async fn max_and_rate_bound_the_run() {
    let queues = parked(10);
    let mut options = options();
    options.max = Some(3);
    options.rate = Some(40.0);
    let started = Instant::now();
    let report = run(&queues, &mut MemoryJournal::default(), &options)
        .await
        .unwrap();
    assert_eq!(report.sent, 3);
    assert_eq!(queues.all("intake-dlq").len(), 7);
    // Three sends at 40/s: the second and third wait 25 ms each.
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn fifo_ids_are_kept_and_marks_never_exceed_ten_attributes() {
    let queues = MemoryQueues::new(&["work.fifo", "work-dlq.fifo"]);
    let mut crowded = letter("fifo-body", "intake", "retryable", "throttled");
    for i in 0..6 {
        crowded.attributes.insert(format!("a{i}"), "v".into());
    }
    assert_eq!(crowded.attributes.len(), 10);
    crowded.group_id = Some("session-7".into());
    crowded.dedup_id = Some("dedup-7".into());
    queues.put("work-dlq.fifo", &crowded, Duration::ZERO);
    let info = queues.find("work-dlq.fifo").await.unwrap();
    assert_eq!(info.source.as_deref(), Some("work.fifo"));
    let options = ReplayOptions {
        idle_receives: 1,
        ..ReplayOptions::new("work-dlq.fifo", "work-dlq.fifo", "work.fifo", 0)
    };
    run(&queues, &mut MemoryJournal::default(), &options)
        .await
        .unwrap();
    let moved = &queues.all("work.fifo")[0];
    assert_eq!(moved.group_id.as_deref(), Some("session-7"));
    assert_eq!(moved.dedup_id.as_deref(), Some("dedup-7"));
    assert_eq!(moved.attributes, crowded.attributes, "no room for marks");
}

#[tokio::test]
async fn binary_attributes_are_never_replayed() {
    let queues = parked(2);
    let id = queues.all("intake-dlq")[0].id.clone();
    queues.set_binary("intake-dlq", &id);
    let report = run(&queues, &mut MemoryJournal::default(), &options())
        .await
        .unwrap();
    assert_eq!((report.sent, report.unsupported.clone()), (1, vec![id]));
    assert_eq!(queues.all("intake-dlq").len(), 1);
}

#[tokio::test]
async fn interrupted_between_send_and_delete_a_rerun_deletes_without_resending() {
    let queues = parked(10);
    let mut journal = MemoryJournal::default();
    let faulty = Faulty::new(queues, Fault::DeleteFailsAfter(3));
    let failure = run(&faulty, &mut journal, &options()).await.unwrap_err();
    assert_eq!((failure.report.sent, failure.report.deleted), (10, 3));
    let queues = faulty.inner;
    assert_eq!(queues.all("intake").len(), 10);
    assert_eq!(queues.all("intake-dlq").len(), 7);
    let report = run(&queues, &mut journal, &options()).await.unwrap();
    assert_eq!(
        (report.sent, report.deleted, report.already_sent),
        (0, 7, 7)
    );
    assert_eq!(
        bodies(&queues, "intake"),
        all_bodies(10),
        "none lost or doubled"
    );
    assert!(queues.all("intake-dlq").is_empty());
}

#[tokio::test]
async fn an_uncertain_send_is_left_in_place_until_forced() {
    // The third send reaches the target but its answer is lost.
    let queues = parked(6);
    let mut journal = MemoryJournal::default();
    let faulty = Faulty::new(queues, Fault::SendLostAnswerAfter(2));
    let failure = run(&faulty, &mut journal, &options()).await.unwrap_err();
    assert_eq!(failure.report.sent, 2);
    let queues = faulty.inner;
    let report = run(&queues, &mut journal, &options()).await.unwrap();
    assert_eq!((report.sent, report.uncertain.len()), (3, 1));
    // Nothing doubled on the target, nothing lost: the uncertain one is still parked.
    assert_eq!(bodies(&queues, "intake"), all_bodies(6));
    assert_eq!(queues.all("intake-dlq").len(), 1);
    assert_eq!(queues.all("intake-dlq")[0].id, report.uncertain[0]);
}

#[tokio::test]
async fn force_resends_an_uncertain_message_that_never_arrived() {
    let queues = parked(4);
    let mut journal = MemoryJournal::default();
    let faulty = Faulty::new(queues, Fault::SendTimeoutAfter(1));
    run(&faulty, &mut journal, &options()).await.unwrap_err();
    let queues = faulty.inner;
    let cautious = run(&queues, &mut journal, &options()).await.unwrap();
    assert_eq!((cautious.sent, cautious.uncertain.len()), (2, 1));
    let mut forced = options();
    forced.force = true;
    let report = run(&queues, &mut journal, &forced).await.unwrap();
    assert_eq!(report.sent, 1);
    assert!(journal.entries.iter().any(|e| e.forced));
    assert_eq!(bodies(&queues, "intake"), all_bodies(4));
    assert!(queues.all("intake-dlq").is_empty());
}

#[tokio::test]
async fn a_journal_that_cannot_record_sent_stops_before_any_delete() {
    let queues = parked(3);
    // Room for the three intents, not for their outcomes.
    let mut journal = MemoryJournal {
        fail_at: Some(3),
        ..Default::default()
    };
    let failure = run(&queues, &mut journal, &options()).await.unwrap_err();
    assert!(failure.error.to_string().contains("journal"));
    assert_eq!(queues.all("intake").len(), 3);
    assert_eq!(
        queues.all("intake-dlq").len(),
        3,
        "nothing deleted unjournaled"
    );
    journal.fail_at = None;
    let report = run(&queues, &mut journal, &options()).await.unwrap();
    assert_eq!((report.sent, report.uncertain.len()), (0, 3));
}

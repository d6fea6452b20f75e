//! Throughput of the `sessions` stage with in-memory adapters, against parsing the same
//! messages alone in the same run, and the port calls each event type costs
//! (target: one state write and at most two scheduler calls per reminder change).
//!
//! Run: `cargo bench -p telepipe-workers --bench sessions`

use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use telepipe_events::sessions::{parse_session_message, DEFAULT_SESSIONS_SOURCE};
use telepipe_workers::config::Env;
use telepipe_workers::memory::{
    MemoryEvents, MemoryNotifications, MemoryScheduler, MemorySessionStore,
};
use telepipe_workers::sessions::SessionsConfig;
use telepipe_workers::sessions::{handle_message, SessionsPorts};

const SESSIONS: usize = 2_000;
const RUNS: usize = 7;

fn envelope(detail_type: &str, detail: serde_json::Value) -> String {
    serde_json::json!({"version": "0", "id": "x", "detail-type": detail_type, "source": DEFAULT_SESSIONS_SOURCE,
        "account": "1", "time": "2026-03-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": detail})
    .to_string()
}

/// A session's life: booked, booked again (duplicate), moved, patient waits, started, ended.
fn life(i: usize, start: Timestamp) -> Vec<(&'static str, String)> {
    let id = format!("bench-{i:05}");
    let moved = start.checked_add(SignedDuration::from_hours(26)).unwrap();
    let booked = envelope(
        "Session Scheduled",
        serde_json::json!({
        "session_id": id, "version": 1, "start": start.to_string(), "duration_minutes": 30,
        "patient_time_zone": "America/Chicago", "locale": "en",
        "patient": {"reference": "p", "channel": "sms", "address": "+13125550100"},
        "clinician": {"reference": "c", "channel": "email", "address": "dr@example.org"}}),
    );
    vec![
        ("Session Scheduled", booked.clone()),
        ("Session Scheduled (duplicate)", booked),
        (
            "Session Rescheduled",
            envelope(
                "Session Rescheduled",
                serde_json::json!({"session_id": id, "version": 2, "start": moved.to_string(), "duration_minutes": 30}),
            ),
        ),
        (
            "Waiting Room Joined",
            envelope(
                "Waiting Room Joined",
                serde_json::json!({"session_id": id, "version": 3, "participant_reference": "p"}),
            ),
        ),
        (
            "Session Started",
            envelope(
                "Session Started",
                serde_json::json!({"session_id": id, "version": 4}),
            ),
        ),
        (
            "Session Ended",
            envelope(
                "Session Ended",
                serde_json::json!({"session_id": id, "version": 5}),
            ),
        ),
    ]
}

struct Ports {
    store: MemorySessionStore,
    scheduler: MemoryScheduler,
    notifications: MemoryNotifications,
    events: MemoryEvents,
}

impl Ports {
    fn new() -> Self {
        Self {
            store: MemorySessionStore::default(),
            scheduler: MemoryScheduler::default(),
            notifications: MemoryNotifications::default(),
            events: MemoryEvents::default(),
        }
    }

    fn counts(&self) -> [usize; 4] {
        [
            self.store.writes.load(Ordering::Relaxed),
            self.scheduler.creates.load(Ordering::Relaxed),
            self.scheduler.deletes.load(Ordering::Relaxed),
            self.events.published.lock().unwrap().len(),
        ]
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let config = SessionsConfig::from_env(&Env::from_pairs(&[])).unwrap();
    let now: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
    let start = now.checked_add(SignedDuration::from_hours(72)).unwrap();
    let messages: Vec<(&'static str, String)> =
        (0..SESSIONS).flat_map(|i| life(i, start)).collect();

    // Port calls per event type, from one pass.
    let ports = Ports::new();
    let mut per_type: BTreeMap<&str, ([usize; 4], usize)> = BTreeMap::new();
    runtime.block_on(async {
        let p = SessionsPorts {
            store: &ports.store,
            scheduler: &ports.scheduler,
            notifications: &ports.notifications,
            events: &ports.events,
        };
        for (kind, body) in &messages {
            let before = ports.counts();
            handle_message(&p, &config, body, now)
                .await
                .expect("bench inputs are valid");
            let after = ports.counts();
            let entry = per_type.entry(kind).or_default();
            for k in 0..4 {
                entry.0[k] += after[k] - before[k];
            }
            entry.1 += 1;
        }
    });

    let mut stage = Vec::new();
    let mut parse = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        for (_, body) in &messages {
            std::hint::black_box(parse_session_message(body, DEFAULT_SESSIONS_SOURCE).unwrap());
        }
        parse.push(started.elapsed());
        let ports = Ports::new();
        let started = Instant::now();
        runtime.block_on(async {
            let p = SessionsPorts {
                store: &ports.store,
                scheduler: &ports.scheduler,
                notifications: &ports.notifications,
                events: &ports.events,
            };
            for (_, body) in &messages {
                std::hint::black_box(handle_message(&p, &config, body, now).await.unwrap());
            }
        });
        stage.push(started.elapsed());
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (stage, parse) = (median(stage), median(parse));
    let rate = |d: Duration| messages.len() as f64 / d.as_secs_f64();
    println!(
        "sessions stage, {} events ({SESSIONS} sessions × 6), median of {RUNS} runs",
        messages.len()
    );
    println!(
        "  stage (parse, apply, plan, ports): {:>10.0} events/s ({:.1} µs/event)",
        rate(stage),
        stage.as_secs_f64() * 1e6 / messages.len() as f64
    );
    println!(
        "  parse only (baseline):             {:>10.0} events/s ({:.1} µs/event)",
        rate(parse),
        parse.as_secs_f64() * 1e6 / messages.len() as f64
    );
    println!(
        "  stage / parse time ratio: {:.1}×",
        stage.as_secs_f64() / parse.as_secs_f64()
    );
    println!();
    println!("port calls per event (state reads are 1 each):");
    println!(
        "  {:<30} {:>12} {:>16} {:>16} {:>8}",
        "event", "state writes", "schedule creates", "schedule deletes", "events"
    );
    for (kind, (totals, n)) in &per_type {
        let per = |k: usize| totals[k] as f64 / *n as f64;
        println!(
            "  {:<30} {:>12.2} {:>16.2} {:>16.2} {:>8.2}",
            kind,
            per(0),
            per(1),
            per(2),
            per(3)
        );
    }
}

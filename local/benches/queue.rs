//! Durable queue throughput: send + receive + delete of small messages through the
//! SQLite queue on disk (WAL, synchronous=NORMAL), against the same code on an in-memory
//! database in the same run (what durability costs).
//!
//! Run: `cargo bench -p telepipe-local --bench queue`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use telepipe_local::db::Db;
use telepipe_local::queue::{QueueSpec, Queues};

const MESSAGES: usize = 20_000;
const RUNS: usize = 5;

fn cycle(db: Db) -> Duration {
    let queues = Queues::new(db);
    queues
        .declare(&QueueSpec {
            name: "bench".into(),
            visibility_secs: 30,
            max_receives: 5,
            dead_letter_queue: None,
        })
        .unwrap();
    let body = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"recordings"},"object":{"key":"recordings%2Fs%2Fa.wav"}}}]}"#;
    let attributes = BTreeMap::new();
    let started = Instant::now();
    let mut done = 0;
    while done < MESSAGES {
        for _ in 0..10 {
            queues.send("bench", body, &attributes, 0).unwrap();
        }
        for message in queues.receive("bench", 10).unwrap() {
            queues.delete(&message.receipt).unwrap();
            done += 1;
        }
    }
    started.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("telepipe-queue-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let on_disk = median(
        (0..RUNS)
            .map(|run| {
                let path = dir.join(format!("run-{run}.db"));
                cycle(Db::open(&path).unwrap())
            })
            .collect(),
    );
    let in_memory = median((0..RUNS).map(|_| cycle(Db::in_memory().unwrap())).collect());
    let rate = |d: Duration| MESSAGES as f64 / d.as_secs_f64();
    println!("| queue | messages | median | send+receive+delete per second |");
    println!("|---|---|---|---|");
    println!(
        "| SQLite on disk (WAL, durable to process crash) | {MESSAGES} | {:.0} ms | {:.0} |",
        on_disk.as_secs_f64() * 1e3,
        rate(on_disk)
    );
    println!(
        "| same code, in-memory SQLite (baseline) | {MESSAGES} | {:.0} ms | {:.0} |",
        in_memory.as_secs_f64() * 1e3,
        rate(in_memory)
    );
    println!(
        "on-disk / in-memory time: {:.2}×",
        on_disk.as_secs_f64() / in_memory.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(dir);
}

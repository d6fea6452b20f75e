//! Cost of metrics: recording one value inside a batch's `collect` scope, recording with
//! no scope and nothing installed, and flushing a typical batch's aggregate as EMF to a
//! no-op sink, against an empty loop in the same run. Medians of repeated runs.
//!
//! Run: `cargo bench -p telepipe-workers --no-default-features --bench metrics`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use telepipe_workers::metrics::{self, collect, Aggregate, Metrics, NoopSink, Unit};

const ITERATIONS: u32 = 100_000;
const RUNS: usize = 21;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median nanoseconds per iteration of `run` (which performs `ITERATIONS` of its work).
fn per_iteration(mut run: impl FnMut()) -> f64 {
    run();
    let samples = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    median(samples).as_nanos() as f64 / f64::from(ITERATIONS)
}

fn batch_aggregate() -> Aggregate {
    let mut aggregate = Aggregate::default();
    for n in 0..10 {
        aggregate.record(&[("Stage", "clinical")], "Processed", Unit::Count, 1.0);
        aggregate.record(
            &[("Stage", "clinical")],
            "Latency",
            Unit::Milliseconds,
            100.0 + f64::from(n),
        );
        for api in ["DetectEntitiesV2", "InferICD10CM", "InferRxNorm"] {
            aggregate.record(&[("Api", api)], "ComprehendRequests", Unit::Count, 1.0);
            aggregate.record(
                &[("Api", api)],
                "ComprehendBilledCharacters",
                Unit::Count,
                9000.0,
            );
        }
    }
    aggregate
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let noop = Metrics::new("telepipe", Arc::new(NoopSink));

    let baseline = per_iteration(|| {
        for n in 0..ITERATIONS {
            black_box(n);
        }
    });
    let unscoped = per_iteration(|| {
        for _ in 0..ITERATIONS {
            metrics::processed(black_box("intake"));
        }
    });
    let scoped = per_iteration(|| {
        runtime.block_on(collect(noop.clone(), async {
            for _ in 0..ITERATIONS {
                metrics::processed(black_box("intake"));
            }
        }))
    });
    // What process_batch records per message (success: Processed + Latency), in batches
    // of 10 each flushed as EMF to the no-op sink: the whole per-message overhead.
    let batched = per_iteration(|| {
        for batch in 0..ITERATIONS / 10 {
            runtime.block_on(collect(noop.clone(), async {
                for n in 0..10 {
                    metrics::processed(black_box("intake"));
                    metrics::latency_ms(black_box("intake"), f64::from(batch % 7 + n));
                }
            }))
        }
    });
    let aggregate = batch_aggregate();
    let documents = aggregate.documents("telepipe", 0).len();
    let flush_runs = 2_000;
    let flush = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..flush_runs {
                    noop.flush(black_box(&aggregate), 1_700_000_000_000);
                }
                start.elapsed() / flush_runs
            })
            .collect(),
    );

    println!("metrics cost, median of {RUNS} runs of {ITERATIONS} (ns per call)");
    println!("  empty loop (baseline)                    {baseline:>8.1}");
    println!("  count, no scope, nothing installed       {unscoped:>8.1}");
    println!("  count inside collect (batch scope)       {scoped:>8.1}");
    println!("  per message, 10-message batches, flushed {batched:>8.1}");
    println!(
        "flush of a 10-message clinical batch ({documents} EMF documents) to a no-op sink: {:.1} µs",
        flush.as_nanos() as f64 / 1000.0
    );
}

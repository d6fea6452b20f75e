//! The `sweeper` Lambda: invoked by an EventBridge schedule: recordings stuck past a
//! deadline → retried or parked transcriptions, re-fed transcripts, `Stage Stalled`
//! events. Wiring in `telepipe_workers::lambda::stages`.
// lambda_runtime + SDK futures nest deeper than the default layout query limit.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telepipe_workers::lambda::serve_stage(telepipe_workers::lambda::Stage::Sweeper).await
}

//! The `capture` Lambda: Chime SDK media pipeline events (via SQS) → one recording per
//! captured meeting, or `Recording Capture Failed`. Wiring in
//! `telepipe_workers::lambda::stages`.
// lambda_runtime + SDK futures nest deeper than the default layout query limit.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telepipe_workers::lambda::serve_stage(telepipe_workers::lambda::Stage::Capture).await
}

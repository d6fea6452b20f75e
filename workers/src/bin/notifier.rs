//! The `notifier` Lambda: notification requests (via SQS) → at most one SMS or email
//! each. Wiring in `telepipe_workers::lambda::stages`.
// lambda_runtime + SDK futures nest deeper than the default layout query limit.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telepipe_workers::lambda::serve_stage(telepipe_workers::lambda::Stage::Notifier).await
}

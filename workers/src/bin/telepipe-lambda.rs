//! `telepipe-lambda`: one artifact for every stage. `TELEPIPE_STAGE` names the stage this
//! function serves (`intake`, `clinical`, `sessions`, `notifier`, `capture`, `replies`,
//! `sweeper`, `sms-inbound`), with the same variables as that stage's own binary; `auto`
//! serves every SQS stage, each record routed by its queue, each stage reading its own
//! `TELEPIPE_{STAGE}__X` before the shared `TELEPIPE_X` (see infra/README.md).
// lambda_runtime + SDK futures nest deeper than the default layout query limit.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telepipe_workers::lambda::serve_from_env().await
}

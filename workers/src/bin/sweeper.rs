//! The `sweeper` Lambda, invoked by an EventBridge schedule (every 5 minutes by
//! default): recordings stuck past a deadline → retried or parked transcriptions,
//! re-fed transcripts, `Stage Stalled` events. The scheduled event's content is ignored.
// lambda_runtime + SDK futures nest deeper than the default layout query limit.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, LambdaEvent};
use telepipe_workers::aws::{
    AwsContext, DynamoStatus, EventBridgePublisher, SqsSender, TranscribeMedical,
};
use telepipe_workers::config::{Env, EventsConfig, RefeedConfig};
use telepipe_workers::lambda::config_or_exit;
use telepipe_workers::status::{now_ms, StatusConfig};
use telepipe_workers::sweeper::{sweep, SweeperConfig, SweeperPorts};
use telepipe_workers::telemetry::init_json_logging;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_json_logging();
    let env = Env::process();
    config_or_exit(telepipe_workers::metrics::install_from_env(&env));
    let config = config_or_exit(SweeperConfig::from_env(&env));
    let events_config = config_or_exit(EventsConfig::from_env(&env));
    let status_config = config_or_exit(StatusConfig::from_env(&env));
    let refeed = config_or_exit(RefeedConfig::from_env(&env));

    let aws = AwsContext::load().await;
    let transcriber = TranscribeMedical::new(&aws);
    let events = EventBridgePublisher::new(&aws, events_config);
    let status = DynamoStatus::new(&aws, status_config.table, status_config.ttl_days);
    let clinical_queue = SqsSender::new(&aws, refeed.clinical_queue_url);
    let ports = SweeperPorts {
        transcriber: &transcriber,
        events: &events,
        status: &status,
        clinical_queue: &clinical_queue,
    };
    let (ports, config) = (&ports, &config);

    lambda_runtime::run(service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            let report = sweep(ports, config, now_ms()).await?;
            // Per-recording failures are retried by the next scheduled sweep; the
            // invocation fails only when nothing could be swept at all.
            Ok::<serde_json::Value, lambda_runtime::Error>(serde_json::json!({
                "examined": report.examined,
                "actions": report.actions.len(),
                "errors": report.errors.len(),
            }))
        },
    ))
    .await
}

//! The `capture` Lambda: Chime SDK media pipeline events (via SQS) → one recording per
//! captured meeting (a media concatenation pipeline), or `Recording Capture Failed`.
#![recursion_limit = "256"]

use telepipe_workers::audit::lambda_actor;
use telepipe_workers::aws::{
    AwsContext, ChimeMediaPipelines, EventBridgePublisher, S3Store, SqsQueue,
};
use telepipe_workers::capture::{handle_message, CapturePorts, STAGE};
use telepipe_workers::config::{AuditConfig, CaptureConfig, ConsumerConfig, Env, EventsConfig};
use telepipe_workers::lambda::{audit_log, config_or_exit, serve_sqs};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telepipe_workers::telemetry::init_json_logging();
    let env = Env::process();
    config_or_exit(telepipe_workers::metrics::install_from_env(&env));
    let config = config_or_exit(CaptureConfig::from_env(&env));
    let consumer = config_or_exit(ConsumerConfig::from_env(&env));
    let events_config = config_or_exit(EventsConfig::from_env(&env));
    let audit_config = config_or_exit(AuditConfig::from_env(&env));
    let aws = AwsContext::load().await;
    let (audit, actor) = (audit_log(&aws, audit_config), lambda_actor());
    let (pipelines, listing) = (ChimeMediaPipelines::new(&aws), S3Store::new(&aws));
    let events = EventBridgePublisher::new(&aws, events_config);
    let queue = SqsQueue::new(&aws, consumer.queue_url.clone(), consumer.dlq_url.clone());
    let ports = CapturePorts {
        pipelines: &pipelines,
        listing: &listing,
        events: &events,
        audit: audit.as_ref(),
        actor: &actor,
    };
    serve_sqs(STAGE, &queue, &consumer, async |body: &str| {
        handle_message(&ports, &config, body).await
    })
    .await
}

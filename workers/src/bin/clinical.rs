//! The `clinical` Lambda: transcript notifications (via SQS) → results documents of clinical entities.
// lambda_runtime + SDK futures nest deeper than the default layout query limit.
#![recursion_limit = "256"]

use telepipe_workers::audit::{lambda_actor, AuditedStatus};
use telepipe_workers::aws::{
    AwsContext, ComprehendMedicalNlp, DynamoStatus, EventBridgePublisher, S3Store, SqsQueue,
};
use telepipe_workers::clinical::{handle_message, ClinicalPorts, STAGE};
use telepipe_workers::config::{AuditConfig, ClinicalConfig, ConsumerConfig, Env, EventsConfig};
use telepipe_workers::lambda::{audit_log, config_or_exit, serve_sqs};
use telepipe_workers::status::StatusConfig;
use telepipe_workers::telemetry::init_json_logging;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_json_logging();
    let env = Env::process();
    config_or_exit(telepipe_workers::metrics::install_from_env(&env));
    let config = config_or_exit(ClinicalConfig::from_env(&env));
    let consumer = config_or_exit(ConsumerConfig::from_env(&env));
    let events_config = config_or_exit(EventsConfig::from_env(&env));
    let status_config = config_or_exit(StatusConfig::from_env(&env));
    let audit_config = config_or_exit(AuditConfig::from_env(&env));

    let aws = AwsContext::load().await;
    let store = S3Store::new(&aws);
    let nlp = ComprehendMedicalNlp::new(&aws);
    let events = EventBridgePublisher::new(&aws, events_config);
    let table = DynamoStatus::new(&aws, status_config.table, status_config.ttl_days);
    let (audit, actor) = (audit_log(&aws, audit_config), lambda_actor());
    let status = AuditedStatus {
        inner: &table,
        audit: audit.as_ref(),
        actor: &actor,
    };
    let queue = SqsQueue::new(&aws, consumer.queue_url.clone(), consumer.dlq_url.clone());
    let ports = ClinicalPorts {
        store: &store,
        nlp: &nlp,
        events: &events,
        status: &status,
    };

    serve_sqs(STAGE, &queue, &consumer, async |body: &str| {
        handle_message(&ports, &config, body).await
    })
    .await
}

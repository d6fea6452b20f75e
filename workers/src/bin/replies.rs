//! The `replies` Lambda: patients' texts (via SQS, from the webhook or SNS two-way SMS) →
//! opt-out / opt-in, a HELP answer, or events for the clinic.
#![recursion_limit = "256"]

use telepipe_workers::aws::{
    AwsContext, DynamoSessionStore, DynamoSuppressions, EventBridgePublisher, SqsNotifications,
    SqsQueue,
};
use telepipe_workers::config::{
    AuditConfig, ConsumerConfig, Env, EventsConfig, PhoneKeyConfig, SessionsAwsConfig,
};
use telepipe_workers::lambda::{audit_log, config_or_exit, phone_key, serve_sqs};
use telepipe_workers::replies::{handle_message, RepliesConfig, RepliesPorts, STAGE};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telepipe_workers::telemetry::init_json_logging();
    let env = Env::process();
    config_or_exit(telepipe_workers::metrics::install_from_env(&env));
    let (consumer, events_config) = (
        config_or_exit(ConsumerConfig::from_env(&env)),
        config_or_exit(EventsConfig::from_env(&env)),
    );
    let (deployed, key_config) = (
        config_or_exit(SessionsAwsConfig::from_env(&env)),
        config_or_exit(PhoneKeyConfig::from_env(&env)),
    );
    let audit_config = config_or_exit(AuditConfig::from_env(&env));
    let aws = AwsContext::load().await;
    let audit = audit_log(&aws, audit_config);
    let Some(phone_key) = phone_key(&aws, key_config).await? else {
        return Err("the replies stage needs TELEPIPE_PHONE_KEY_SECRET_ARN".into());
    };
    let config = RepliesConfig { phone_key };
    let (sessions, suppressions) = (
        DynamoSessionStore::new(&aws, deployed.table.clone()),
        DynamoSuppressions::new(&aws, deployed.table),
    );
    let notifications = SqsNotifications::new(&aws, deployed.notifications_queue_url);
    let events = EventBridgePublisher::new(&aws, events_config);
    let queue = SqsQueue::new(&aws, consumer.queue_url.clone(), consumer.dlq_url.clone());
    let ports = RepliesPorts {
        sessions: &sessions,
        suppressions: &suppressions,
        notifications: &notifications,
        events: &events,
        audit: audit.as_ref(),
    };
    serve_sqs(STAGE, &queue, &consumer, async |body: &str| {
        handle_message(&ports, &config, body, jiff::Timestamp::now()).await
    })
    .await
}

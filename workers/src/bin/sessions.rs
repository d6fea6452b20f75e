//! The `sessions` Lambda: session-state events (via SQS) → session state, reminder
//! schedules, waiting-room alerts and recording expectations.
// lambda_runtime + SDK futures nest deeper than the default layout query limit.
#![recursion_limit = "256"]

use telepipe_workers::aws::{
    AwsContext, DynamoSessionStore, EventBridgePublisher, EventBridgeScheduler, SqsNotifications,
    SqsQueue,
};
use telepipe_workers::config::{
    ConsumerConfig, Env, EventsConfig, PhoneKeyConfig, SchedulerConfig, SessionsAwsConfig,
    SessionsConfig,
};
use telepipe_workers::lambda::{config_or_exit, phone_key, serve_sqs};
use telepipe_workers::sessions::{handle_message, SessionsPorts, STAGE};
use telepipe_workers::telemetry::init_json_logging;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_json_logging();
    let env = Env::process();
    config_or_exit(telepipe_workers::metrics::install_from_env(&env));
    let mut config = config_or_exit(SessionsConfig::from_env(&env));
    let phone_key_config = config_or_exit(PhoneKeyConfig::from_env(&env));
    let consumer = config_or_exit(ConsumerConfig::from_env(&env));
    let events_config = config_or_exit(EventsConfig::from_env(&env));
    let scheduler_config = config_or_exit(SchedulerConfig::from_env(&env));
    let deployed = config_or_exit(SessionsAwsConfig::from_env(&env));

    let aws = AwsContext::load().await;
    config.phone_key = phone_key(&aws, phone_key_config).await?;
    let store =
        DynamoSessionStore::new(&aws, deployed.table).with_retention_days(deployed.state_ttl_days);
    let scheduler = EventBridgeScheduler::new(&aws, scheduler_config);
    let notifications = SqsNotifications::new(&aws, deployed.notifications_queue_url);
    let events = EventBridgePublisher::new(&aws, events_config);
    let queue = SqsQueue::new(&aws, consumer.queue_url.clone(), consumer.dlq_url.clone());
    let ports = SessionsPorts {
        store: &store,
        scheduler: &scheduler,
        notifications: &notifications,
        events: &events,
    };

    serve_sqs(STAGE, &queue, &consumer, async |body: &str| {
        handle_message(&ports, &config, body, jiff::Timestamp::now()).await
    })
    .await
}

//! The `notifier` Lambda: notification requests (via SQS) → at most one SMS or email each.
// lambda_runtime + SDK futures nest deeper than the default layout query limit.
#![recursion_limit = "256"]

use telepipe_workers::aws::{
    AwsContext, Channels, DynamoIntentLedger, DynamoSessionStore, DynamoSuppressions,
    EventBridgePublisher, SesEmail, SmsSender, SnsSms, SqsQueue, TwilioSms,
};
use telepipe_workers::config::{
    ConsumerConfig, Env, EventsConfig, NotifierAwsConfig, NotifierConfig, PhoneKeyConfig,
    SmsProvider, TwilioConfig,
};
use telepipe_workers::lambda::{config_or_exit, phone_key, serve_sqs_with_margin};
use telepipe_workers::notifier::{handle_message, NotifierPorts, STAGE};
use telepipe_workers::telemetry::init_json_logging;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_json_logging();
    let env = Env::process();
    config_or_exit(telepipe_workers::metrics::install_from_env(&env));
    let mut config = config_or_exit(NotifierConfig::from_env(&env));
    let phone_key_config = config_or_exit(PhoneKeyConfig::from_env(&env));
    let consumer = config_or_exit(ConsumerConfig::from_env(&env));
    let events_config = config_or_exit(EventsConfig::from_env(&env));
    let deployed = config_or_exit(NotifierAwsConfig::from_env(&env));
    let table = deployed.table.clone();

    let aws = AwsContext::load().await;
    config.phone_key = phone_key(&aws, phone_key_config).await?;
    let sms = match config.sms_provider {
        SmsProvider::Sns => {
            SmsSender::Sns(SnsSms::new(&aws, deployed.sns_origination_number.clone()))
        }
        SmsProvider::Twilio => {
            let twilio = config_or_exit(TwilioConfig::from_env(&env));
            match TwilioSms::new(&aws, twilio).await {
                Ok(sender) => SmsSender::Twilio(Box::new(sender)),
                Err(err) => {
                    tracing::error!(error = %err, "could not load the Twilio credentials");
                    return Err(err.into());
                }
            }
        }
    };
    let email = deployed
        .email_from
        .clone()
        .map(|from| SesEmail::new(&aws, from, deployed.ses_configuration_set.clone()));
    let sender = Channels { sms, email };
    let store = DynamoSessionStore::new(&aws, table.clone());
    let suppressions = DynamoSuppressions::new(&aws, table.clone());
    let ledger = DynamoIntentLedger::new(&aws, table, config.idempotency_window)
        .with_log_days(config.notification_log_days);
    let events = EventBridgePublisher::new(&aws, events_config);
    let queue = SqsQueue::new(&aws, consumer.queue_url.clone(), consumer.dlq_url.clone());
    let ports = NotifierPorts {
        store: &store,
        ledger: &ledger,
        sender: &sender,
        events: &events,
        suppressions: &suppressions,
    };

    // A send needs up to the provider timeout (15 s) plus the ledger writes: none is begun
    // with less than that left, so the invocation timeout never cuts one off mid-way.
    let margin = Some(std::time::Duration::from_secs(20));
    serve_sqs_with_margin(STAGE, &queue, &consumer, margin, async |body: &str| {
        // Each attempt owns the claim it makes; a random token is unique enough.
        let attempt = format!("{:016x}", fastrand::u64(..));
        handle_message(&ports, &config, body, &attempt, jiff::Timestamp::now()).await
    })
    .await
}

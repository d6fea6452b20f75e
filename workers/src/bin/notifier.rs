//! The `notifier` Lambda: notification requests (via SQS) → at most one SMS or email each.
// lambda_runtime + SDK futures nest deeper than the default layout query limit.
#![recursion_limit = "256"]

use telepipe_workers::aws::{
    AwsContext, Channels, DynamoIntentLedger, DynamoSessionStore, EventBridgePublisher, SesEmail,
    SmsSender, SnsSms, SqsQueue, TwilioConfig, TwilioSms,
};
use telepipe_workers::config::{ConsumerConfig, Env, EventsConfig, NotifierConfig, SmsProvider};
use telepipe_workers::lambda::{config_or_exit, serve_sqs};
use telepipe_workers::notifier::{handle_message, NotifierPorts, STAGE};
use telepipe_workers::telemetry::init_json_logging;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_json_logging();
    let env = Env::process();
    let config = config_or_exit(NotifierConfig::from_env(&env));
    let consumer = config_or_exit(ConsumerConfig::from_env(&env));
    let events_config = config_or_exit(EventsConfig::from_env(&env));
    let table = config_or_exit(env.required("TELEPIPE_SESSIONS_TABLE"));

    let aws = AwsContext::load().await;
    let sms = match config.sms_provider {
        SmsProvider::Sns => SmsSender::Sns(SnsSms::new(
            &aws,
            env.optional("TELEPIPE_SNS_ORIGINATION_NUMBER"),
        )),
        SmsProvider::Twilio => {
            let twilio = config_or_exit(TwilioConfig::from_env(&env));
            match TwilioSms::new(&aws, twilio).await {
                Ok(sender) => SmsSender::Twilio(sender),
                Err(err) => {
                    tracing::error!(error = %err, "could not load the Twilio credentials");
                    return Err(err.into());
                }
            }
        }
    };
    let email = env
        .optional("TELEPIPE_EMAIL_FROM")
        .map(|from| SesEmail::new(&aws, from, env.optional("TELEPIPE_SES_CONFIGURATION_SET")));
    let sender = Channels { sms, email };
    let store = DynamoSessionStore::new(&aws, table.clone());
    let ledger = DynamoIntentLedger::new(&aws, table, config.idempotency_window);
    let events = EventBridgePublisher::new(&aws, events_config);
    let queue = SqsQueue::new(&aws, consumer.queue_url.clone(), consumer.dlq_url.clone());
    let ports = NotifierPorts {
        store: &store,
        ledger: &ledger,
        sender: &sender,
        events: &events,
    };

    serve_sqs(STAGE, &queue, &consumer, async |body: &str| {
        // Each attempt owns the claim it makes; a random token is unique enough.
        let attempt = format!("{:016x}", fastrand::u64(..));
        handle_message(&ports, &config, body, &attempt, jiff::Timestamp::now()).await
    })
    .await
}

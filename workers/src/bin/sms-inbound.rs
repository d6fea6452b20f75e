//! The `sms-inbound` Lambda behind a function URL: Twilio's inbound-SMS webhook,
//! signature-checked, onto the replies queue; answered at once with empty TwiML.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, LambdaEvent};
use telepipe_workers::aws::{twilio_credentials, twilio_webhook, AwsContext, SqsSender};
use telepipe_workers::config::{Env, InboundConfig};
use telepipe_workers::lambda::config_or_exit;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telepipe_workers::telemetry::init_json_logging();
    let env = Env::process();
    config_or_exit(telepipe_workers::metrics::install_from_env(&env));
    let config = config_or_exit(InboundConfig::from_env(&env));
    let aws = AwsContext::load().await;
    // The auth token is read once, here, and never printed.
    let (_, token) = twilio_credentials(&aws, config.credentials.clone()).await?;
    let replies = SqsSender::new(&aws, config.replies_queue_url.clone());
    let (url, token, replies) = (config.webhook_url.as_deref(), &token, &replies);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let answer = twilio_webhook::serve(&event.payload, url, token, replies).await;
            Ok::<serde_json::Value, lambda_runtime::Error>(answer)
        },
    ))
    .await
}

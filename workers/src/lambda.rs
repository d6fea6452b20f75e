//! What every Lambda SQS consumer shares: configuration errors that stop start-up with
//! the variable named, and the loop that turns an SQS event into a partial batch response.

use crate::batch::{process_batch_before, BatchResponse, Received};
use crate::config::{ConfigError, ConsumerConfig};
use crate::error::StageError;
use crate::ports::MessageQueue;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

/// Unwraps a configuration result or exits with status 2 and the variable named (Lambda
/// reports it as an init error in the function's log).
pub fn config_or_exit<T>(result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|err| {
        tracing::error!(variable = err.variable, problem = %err.problem, "invalid configuration");
        eprintln!("{err}");
        std::process::exit(2)
    })
}

/// Serves SQS events to `handle`, one message body at a time, answering with the
/// messages that must stay on the queue.
pub async fn serve_sqs<Q, F, T>(
    stage: &'static str,
    queue: &Q,
    config: &ConsumerConfig,
    handle: F,
) -> Result<(), lambda_runtime::Error>
where
    Q: MessageQueue,
    F: AsyncFn(&str) -> Result<T, StageError>,
{
    serve_sqs_with_margin(stage, queue, config, None, handle).await
}

/// [`serve_sqs`] that starts no message once less than `deadline_margin` of the
/// invocation remains (the notifier: a send cut off by the timeout has an unknown outcome).
pub async fn serve_sqs_with_margin<Q, F, T>(
    stage: &'static str,
    queue: &Q,
    config: &ConsumerConfig,
    deadline_margin: Option<std::time::Duration>,
    handle: F,
) -> Result<(), lambda_runtime::Error>
where
    Q: MessageQueue,
    F: AsyncFn(&str) -> Result<T, StageError>,
{
    let handle = &handle;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let mut received = Vec::with_capacity(event.payload.records.len());
        for message in event.payload.records {
            match Received::from_lambda(message) {
                Some(message) => received.push(message),
                // Without an id the message cannot be reported alone: fail the whole
                // invocation so SQS redelivers everything rather than drop it.
                None => {
                    return Err(lambda_runtime::Error::from(
                        "SQS record without messageId or receiptHandle",
                    ))
                }
            }
        }
        // Begin no message within the margin of the invocation's deadline.
        let start_before = deadline_margin.and_then(|margin| {
            let remaining = event
                .context
                .deadline()
                .duration_since(std::time::SystemTime::now())
                .ok()?;
            std::time::Instant::now().checked_add(remaining.saturating_sub(margin))
        });
        let (response, _) =
            process_batch_before(stage, &received, queue, config, start_before, handle).await;
        Ok::<BatchResponse, lambda_runtime::Error>(response)
    }))
    .await
}

/// The audit trail of a Lambda function: the Object Lock bucket when configured; without
/// one, says so once (at start-up, not per message) and audits nothing.
pub fn audit_log(
    aws: &crate::aws::AwsContext,
    config: crate::config::AuditConfig,
) -> Option<crate::aws::S3AuditLog> {
    match config.bucket {
        Some(bucket) => Some(crate::aws::S3AuditLog::new(aws, bucket)),
        None => {
            tracing::warn!("TELEPIPE_AUDIT_BUCKET is not set: no audit entries are written");
            None
        }
    }
}

/// The phone key, read once at start-up (Secrets Manager, or the value itself); `None`
/// when not configured (said once). A secret that cannot be read stops the start-up: a
/// notifier without it would text numbers that opted out.
pub async fn phone_key(
    aws: &crate::aws::AwsContext,
    config: crate::config::PhoneKeyConfig,
) -> Result<Option<crate::replies::PhoneKey>, crate::error::PortError> {
    use crate::config::PhoneKeyConfig;
    match config {
        PhoneKeyConfig::Value(secret) => Ok(Some(crate::replies::PhoneKey::new(
            secret.expose().as_bytes(),
        ))),
        PhoneKeyConfig::Secret(arn) => {
            let output = aws_sdk_secretsmanager::Client::new(&aws.sdk)
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| crate::aws::classify(&e, "secretsmanager", "GetSecretValue"))?;
            let value = output.secret_string().unwrap_or_default().trim().to_owned();
            if value.len() < 16 {
                return Err(crate::error::PortError::new(
                    crate::error::PortErrorKind::InvalidRequest,
                    "secretsmanager",
                    "GetSecretValue",
                )
                .with_code("PhoneKeyTooShort"));
            }
            Ok(Some(crate::replies::PhoneKey::new(value.as_bytes())))
        }
        PhoneKeyConfig::None => {
            tracing::warn!("no phone key (TELEPIPE_PHONE_KEY_SECRET_ARN): texts back cannot find sessions and opt-outs are not checked");
            Ok(None)
        }
    }
}

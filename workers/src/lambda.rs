//! What every Lambda SQS consumer shares: configuration errors that stop start-up with
//! the variable named, and the loop that turns an SQS event into a partial batch response.

use crate::batch::{process_batch, BatchResponse, Received};
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
        let (response, _) = process_batch(stage, &received, queue, config, handle).await;
        Ok::<BatchResponse, lambda_runtime::Error>(response)
    }))
    .await
}

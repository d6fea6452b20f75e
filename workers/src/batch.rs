//! Drives a stage over an SQS batch: one span per message, panics caught, and each
//! failure disposed of by its class.
//!
//! - success: the message is deleted (not reported as failed);
//! - retryable: its visibility is set to a jittered exponential backoff on its receive
//!   count and it is reported as a batch item failure, so it returns later;
//! - retryable after `max_receives`, permanent, or a panic: it is sent to the
//!   dead-letter queue at once with its reason, then deleted.
//!
//! Nothing is dropped: if parking or postponing fails, the message is reported as
//! failed and the queue's own redrive policy remains the safety net.
//!
//! Each message records its outcome and latency (`crate::metrics`), aggregated over the
//! batch and written as EMF when the batch ends, and runs with its correlation id
//! (`crate::telemetry`), which a dead letter carries on.

use crate::config::ConsumerConfig;
use crate::error::Reason;
use crate::error::{ErrorClass, StageError};
use crate::metrics;
use crate::ports::{DeadLetter, MessageQueue};
use crate::telemetry::{self, ATTR_CORRELATION_ID};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};
use tracing::{error, field, info, info_span, warn, Instrument};

/// One received message, independent of how it was received (Lambda event, local queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
    pub attributes: BTreeMap<String, String>,
}

impl Received {
    /// From a Lambda SQS record; `None` when it lacks the id or handle needed to answer for it.
    pub fn from_lambda(message: aws_lambda_events::event::sqs::SqsMessage) -> Option<Self> {
        let receive_count = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        let attributes = message
            .message_attributes
            .iter()
            .filter_map(|(name, value)| value.string_value.clone().map(|v| (name.clone(), v)))
            .collect();
        Some(Self {
            message_id: message.message_id?,
            receipt_handle: message.receipt_handle?,
            body: message.body.unwrap_or_default(),
            receive_count,
            attributes,
        })
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Done,
    RetryLater {
        delay: Duration,
    },
    DeadLettered {
        reason: String,
    },
    /// Could not be parked or postponed; left to the queue's redrive.
    Failed,
    /// Not started: the invocation's deadline was too near to begin it (left on the
    /// queue untouched, it comes back after its visibility timeout).
    NotStarted,
}

impl Disposition {
    /// Whether the message must be reported as a batch item failure (kept on the queue).
    pub fn keeps_message(&self) -> bool {
        matches!(
            self,
            Self::RetryLater { .. } | Self::Failed | Self::NotStarted
        )
    }
}

/// The partial batch response Lambda expects from an SQS consumer: `aws_lambda_events`'
/// own types, so the field names are Lambda's by construction.
pub use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse as BatchResponse};

/// The visibility delay before receive number `receive_count + 1`: doubling from the
/// base, capped, with "equal jitter" (half fixed, half random) so a burst of throttled
/// messages does not return as a burst.
pub fn backoff(config: &ConsumerConfig, receive_count: u32) -> Duration {
    let ceiling =
        crate::retry::exponential_ceiling(config.retry_base, config.retry_max, receive_count)
            .as_secs();
    let half = ceiling / 2;
    Duration::from_secs(half + fastrand::u64(0..=ceiling - half))
}

/// Runs `handle` on one message and disposes of the outcome.
pub async fn process_one<Q, F, T>(
    stage: &'static str,
    message: &Received,
    queue: &Q,
    config: &ConsumerConfig,
    handle: &F,
) -> Disposition
where
    Q: MessageQueue,
    F: AsyncFn(&str) -> Result<T, StageError>,
{
    let incoming = message
        .attributes
        .get(ATTR_CORRELATION_ID)
        .map(String::as_str);
    let span = info_span!("message", stage, message_id = %message.message_id, receive_count = message.receive_count, correlation_id = field::Empty);
    let carried = incoming.filter(|id| telemetry::is_valid_correlation_id(id));
    if let Some(id) = carried {
        span.record("correlation_id", id);
    }
    let started = Instant::now();
    let disposition = async {
        let (outcome, correlation_id) =
            telemetry::with_correlation(incoming, AssertUnwindSafe(handle(&message.body)).catch_unwind()).await;
        // The stage derived the id: the message's own lines (retry, dead letter) carry it too.
        if let (None, Some(id)) = (carried, &correlation_id) {
            tracing::Span::current().record("correlation_id", id.as_str());
        }
        let (failure, class) = match outcome {
            Ok(Ok(_)) => {
                metrics::processed(stage);
                return Disposition::Done;
            }
            Ok(Err(err)) => {
                let class = err.class.as_str();
                (err, class)
            }
            Err(_) => {
                // A panic is a bug: the same input would panic again, so park it now.
                error!("stage panicked");
                let err = StageError::permanent(Reason::WorkerPanic, format!("message={}", message.message_id));
                (err, "panic")
            }
        };
        metrics::failed(stage, class);
        let exhausted = failure.is_retryable() && message.receive_count >= config.max_receives;
        if failure.class == ErrorClass::Retryable && !exhausted {
            let delay = backoff(config, message.receive_count);
            warn!(error_class = "retryable", reason = %failure.reason, error = %failure, delay_secs = delay.as_secs(), "will retry");
            metrics::retried(stage);
            if let Err(err) = queue.retry_later(&message.receipt_handle, delay.as_secs() as u32).await {
                warn!(error = %err, "could not postpone; the queue's visibility timeout applies");
            }
            return Disposition::RetryLater { delay };
        }
        let reason = if exhausted { format!("retries_exhausted:{}", failure.reason) } else { failure.reason.to_string() };
        let letter = DeadLetter {
            body: message.body.clone(),
            source_message_id: message.message_id.clone(),
            stage,
            error_class: failure.class.as_str(),
            reason: reason.clone(),
            context: failure.context.clone(),
            receive_count: message.receive_count,
            attributes: {
                let mut attributes = message.attributes.clone();
                // The id in effect, never a malformed one the message brought.
                match correlation_id {
                    Some(id) => attributes.insert(ATTR_CORRELATION_ID.to_owned(), id),
                    None => attributes.remove(ATTR_CORRELATION_ID),
                };
                attributes
            },
        };
        match queue.dead_letter(&letter).await {
            Ok(()) => {
                warn!(error_class = failure.class.as_str(), reason = %reason, error = %failure, "dead-lettered");
                metrics::dead_lettered(stage);
                Disposition::DeadLettered { reason }
            }
            Err(err) => {
                error!(error = %err, reason = %reason, "could not dead-letter; leaving the message to the queue's redrive");
                metrics::dead_letter_failed(stage);
                Disposition::Failed
            }
        }
    }
    .instrument(span)
    .await;
    metrics::latency_ms(stage, started.elapsed().as_secs_f64() * 1000.0);
    disposition
}

/// Runs `handle` over a batch, one message after another (so a consumer's concurrency is
/// exactly its downstream concurrency), and builds the partial batch response. The
/// batch's metrics are written when it ends (see `crate::metrics::collect`).
pub async fn process_batch<Q, F, T>(
    stage: &'static str,
    messages: &[Received],
    queue: &Q,
    config: &ConsumerConfig,
    handle: F,
) -> (BatchResponse, Vec<Disposition>)
where
    Q: MessageQueue,
    F: AsyncFn(&str) -> Result<T, StageError>,
{
    process_batch_before(stage, messages, queue, config, None, handle).await
}

/// [`process_batch`] that starts no message once `start_before` has passed: a message
/// begun too close to the invocation's deadline could be cut off mid-way (for the
/// notifier, after a provider accepted it but before the ledger says so). What is not
/// started stays on the queue as a batch item failure, untouched.
pub async fn process_batch_before<Q, F, T>(
    stage: &'static str,
    messages: &[Received],
    queue: &Q,
    config: &ConsumerConfig,
    start_before: Option<std::time::Instant>,
    handle: F,
) -> (BatchResponse, Vec<Disposition>)
where
    Q: MessageQueue,
    F: AsyncFn(&str) -> Result<T, StageError>,
{
    let mut response = BatchResponse::default();
    let mut dispositions = Vec::with_capacity(messages.len());
    metrics::collect(metrics::current(), async {
        for message in messages {
            let late = start_before.is_some_and(|limit| std::time::Instant::now() >= limit);
            let disposition = if late {
                Disposition::NotStarted
            } else {
                process_one(stage, message, queue, config, &handle).await
            };
            if disposition.keeps_message() {
                response.add_failure(message.message_id.clone());
            }
            dispositions.push(disposition);
        }
    })
    .await;
    info!(
        stage,
        messages = messages.len(),
        failures = response.batch_item_failures.len(),
        "batch processed"
    );
    (response, dispositions)
}

//! The narrow port the dead-letter tooling needs from a queue service, and the types it
//! speaks. Three adapters implement it: `crate::memory` (tests), `crate::sqs` (Amazon SQS)
//! and `telepipe_local::dlq` (the local runtime's SQLite queues).
//!
//! Queues are named by an opaque `queue` string: a queue URL on SQS, a queue name locally.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use telepipe_workers::error::PortError;

/// One dead-letter queue as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqInfo {
    /// Display name (`intake-dlq`).
    pub name: String,
    /// What the other port methods take: the queue URL on SQS, the name locally.
    pub queue: String,
    /// Messages stored (visible, in flight and delayed).
    pub depth: u64,
    /// Of which received and not yet deleted or released (by a consumer or a replay).
    pub in_flight: u64,
    /// Age of the oldest message, when the service tells.
    pub oldest_age: Option<Duration>,
    /// The queue its messages came from, if known (`queue` form).
    pub source: Option<String>,
    /// A FIFO queue: replays must keep each message's group and deduplication id.
    pub fifo: bool,
}

/// One received (or peeked) dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqMessage {
    /// Stable while the message stays on this queue: the key of the replay journal.
    pub id: String,
    /// Empty for a peeked (not received) message.
    pub receipt: String,
    pub body: String,
    /// String (and Number, as text) message attributes.
    pub attributes: BTreeMap<String, String>,
    /// Binary attributes cannot be carried by this tool; such a message is never replayed.
    pub has_binary_attributes: bool,
    pub receive_count: u32,
    /// When it was sent to the queue (ms since the epoch), when the service tells.
    pub sent_at_ms: Option<i64>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

/// A message to send: body and attributes kept, FIFO ids kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

/// What `telepipe dlq` needs from a queue service.
pub trait DlqAdmin: Send + Sync {
    /// Every dead-letter queue with its depth, oldest age and source queue.
    fn list(&self) -> impl Future<Output = Result<Vec<DlqInfo>, PortError>> + Send;

    /// Looks one dead-letter queue up by the name or URL the operator typed.
    fn find(&self, queue: &str) -> impl Future<Output = Result<DlqInfo, PortError>> + Send;

    /// Up to `max` messages without taking them (peek): received and released again on
    /// SQS, read in place locally.
    fn peek(
        &self,
        queue: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<DlqMessage>, PortError>> + Send;

    /// Receives up to `max` (≤ 10) messages, hiding each for `visibility_secs`.
    fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility_secs: u32,
    ) -> impl Future<Output = Result<Vec<DlqMessage>, PortError>> + Send;

    /// Sends a message; returns its new message id.
    fn send(
        &self,
        queue: &str,
        message: &Outgoing,
    ) -> impl Future<Output = Result<String, PortError>> + Send;

    fn delete(
        &self,
        queue: &str,
        receipt: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Sends several messages (SQS: one `SendMessageBatch`), answering in order. The answer
    /// may be shorter than `messages`: those past its end were not attempted.
    fn send_batch(
        &self,
        queue: &str,
        messages: &[Outgoing],
    ) -> impl Future<Output = Vec<Result<String, PortError>>> + Send {
        async move {
            let mut results = Vec::new();
            for message in messages {
                let result = self.send(queue, message).await;
                let failed = result.is_err();
                results.push(result);
                if failed {
                    break;
                }
            }
            results
        }
    }

    /// Deletes several received messages (SQS: one `DeleteMessageBatch`), answering in
    /// order; as `send_batch`, the answer may stop short.
    fn delete_batch(
        &self,
        queue: &str,
        receipts: &[String],
    ) -> impl Future<Output = Vec<Result<(), PortError>>> + Send {
        async move {
            let mut results = Vec::new();
            for receipt in receipts {
                let result = self.delete(queue, receipt).await;
                let failed = result.is_err();
                results.push(result);
                if failed {
                    break;
                }
            }
            results
        }
    }

    /// Makes received messages visible again at once (SQS: `ChangeMessageVisibilityBatch`);
    /// best effort, returns how many were released.
    fn release_batch(
        &self,
        queue: &str,
        receipts: &[String],
    ) -> impl Future<Output = usize> + Send {
        async move {
            let mut released = 0;
            for receipt in receipts {
                if self.release(queue, receipt).await.is_ok() {
                    released += 1;
                }
            }
            released
        }
    }

    /// Makes a received message visible again at once.
    fn release(
        &self,
        queue: &str,
        receipt: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The source queue named by the dead-letter naming convention: `X-dlq` → `X`,
/// `X-dlq.fifo` → `X.fifo`. `None` when `name` does not follow it.
pub fn conventional_source(name: &str) -> Option<String> {
    if let Some(base) = name.strip_suffix("-dlq.fifo") {
        return (!base.is_empty()).then(|| format!("{base}.fifo"));
    }
    name.strip_suffix("-dlq")
        .filter(|base| !base.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_convention() {
        assert_eq!(conventional_source("intake-dlq").as_deref(), Some("intake"));
        assert_eq!(conventional_source("a-dlq.fifo").as_deref(), Some("a.fifo"));
        assert_eq!(conventional_source("-dlq"), None);
        assert_eq!(conventional_source("intake"), None);
    }
}

//! `DlqAdmin` on Amazon SQS, and the native whole-queue redrive (`StartMessageMoveTask`).
//!
//! A queue is a dead-letter queue when `ListDeadLetterSourceQueues` names a source for it
//! or its name follows the convention `X-dlq` (telepipe's workers park messages there
//! themselves, which no redrive policy records). Its source is the first queue the
//! redrive policies name, else `X`.

use crate::port::{conventional_source, DlqAdmin, DlqInfo, DlqMessage, Outgoing};
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use telepipe_workers::aws::{classify, kind_from_code, AwsContext};
use telepipe_workers::error::PortError;

/// The SQS adapter. Queues are named by URL (a plain name is looked up).
#[derive(Clone)]
pub struct SqsDlqAdmin {
    client: Client,
}

fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// SQS's limit on a batch's total payload (bodies and attributes), with a margin.
const BATCH_BYTES: usize = 240 * 1024;

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

fn payload_bytes(message: &Outgoing) -> usize {
    message.body.len()
        + message
            .attributes
            .iter()
            .map(|(name, value)| name.len() + value.len() + 6)
            .sum::<usize>()
}

/// A failed batch entry as a port error: the sender's fault is a 400 (definitely not
/// done), the service's a 500 (treated as uncertain).
fn entry_error(entry: &BatchResultErrorEntry, operation: &'static str) -> PortError {
    let status = if entry.sender_fault { 400 } else { 500 };
    PortError::new(
        kind_from_code(Some(&entry.code), Some(status)),
        "sqs",
        operation,
    )
    .with_code(entry.code.clone())
    .with_status(status)
}

/// Answers in request order from a batch response's successes and failures.
fn in_order<T: Clone>(
    len: usize,
    successes: impl IntoIterator<Item = (String, T)>,
    failures: &[BatchResultErrorEntry],
    operation: &'static str,
) -> Vec<Result<T, PortError>> {
    let missing = PortError::new(
        telepipe_workers::error::PortErrorKind::Other,
        "sqs",
        operation,
    );
    let mut results: Vec<Result<T, PortError>> = vec![Err(missing); len];
    for (id, value) in successes {
        if let Some(slot) = id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
            *slot = Ok(value);
        }
    }
    for failure in failures {
        if let Some(slot) = failure
            .id
            .parse::<usize>()
            .ok()
            .and_then(|i| results.get_mut(i))
        {
            *slot = Err(entry_error(failure, operation));
        }
    }
    results
}

fn is_url(queue: &str) -> bool {
    queue.starts_with("https://") || queue.starts_with("http://")
}

impl SqsDlqAdmin {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// From the SDK's standard configuration (env region, endpoint, credentials).
    pub async fn from_env() -> Self {
        Self::new(Client::new(&AwsContext::load().await.sdk))
    }

    /// The URL of `queue` (a URL already, or a name).
    pub async fn url(&self, queue: &str) -> Result<String, PortError> {
        if is_url(queue) {
            return Ok(queue.to_owned());
        }
        let output = self
            .client
            .get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "GetQueueUrl"))?;
        Ok(output.queue_url.unwrap_or_default())
    }

    pub async fn arn(&self, url: &str) -> Result<String, PortError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "GetQueueAttributes"))?;
        Ok(output
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default())
    }

    async fn sources(&self, url: &str) -> Result<Vec<String>, PortError> {
        let mut sources = Vec::new();
        let mut token = None;
        loop {
            let output = self
                .client
                .list_dead_letter_source_queues()
                .queue_url(url)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify(&e, "sqs", "ListDeadLetterSourceQueues"))?;
            sources.extend(output.queue_urls);
            token = output.next_token;
            if token.is_none() {
                return Ok(sources);
            }
        }
    }

    async fn info(&self, url: &str, sources: Vec<String>) -> Result<DlqInfo, PortError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "GetQueueAttributes"))?;
        let attributes = output.attributes.unwrap_or_default();
        let count = |name: QueueAttributeName| -> u64 {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let in_flight = count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        let depth = count(QueueAttributeName::ApproximateNumberOfMessages)
            + in_flight
            + count(QueueAttributeName::ApproximateNumberOfMessagesDelayed);
        let name = queue_name(url).to_owned();
        let source = match sources.into_iter().next() {
            Some(source) => Some(source),
            None => match conventional_source(&name) {
                Some(source) => self.url(&source).await.ok(),
                None => None,
            },
        };
        Ok(DlqInfo {
            fifo: name.ends_with(".fifo"),
            name,
            queue: url.to_owned(),
            depth,
            in_flight,
            // SQS's API does not tell the age of the oldest message (CloudWatch's
            // ApproximateAgeOfOldestMessage does); `peek` shows each message's.
            oldest_age: None,
            source,
        })
    }

    /// Starts SQS's own redrive of every message of `dlq` to `target` (or, without one,
    /// back to each message's original source queue). Returns the task handle.
    pub async fn start_native_move(
        &self,
        dlq: &str,
        target: Option<&str>,
        rate: Option<i32>,
    ) -> Result<String, PortError> {
        let source_arn = self.arn(&self.url(dlq).await?).await?;
        let destination_arn = match target {
            Some(target) => Some(self.arn(&self.url(target).await?).await?),
            None => None,
        };
        let output = self
            .client
            .start_message_move_task()
            .source_arn(source_arn)
            .set_destination_arn(destination_arn)
            .set_max_number_of_messages_per_second(rate)
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "StartMessageMoveTask"))?;
        Ok(output.task_handle.unwrap_or_default())
    }

    async fn receive_with(
        &self,
        url: &str,
        max: usize,
        visibility_secs: u32,
    ) -> Result<Vec<DlqMessage>, PortError> {
        let output = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(visibility_secs.min(43_200) as i32)
            // Long polling asks every SQS host, so an empty answer means an empty queue.
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "ReceiveMessage"))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|message| {
                let system = message.attributes.unwrap_or_default();
                let system_value = |name: MessageSystemAttributeName| system.get(&name).cloned();
                let mut attributes = std::collections::BTreeMap::new();
                let mut has_binary_attributes = false;
                for (name, value) in message.message_attributes.unwrap_or_default() {
                    match value.string_value {
                        Some(text) => {
                            attributes.insert(name, text);
                        }
                        None => has_binary_attributes = true,
                    }
                }
                DlqMessage {
                    id: message.message_id.unwrap_or_default(),
                    receipt: message.receipt_handle.unwrap_or_default(),
                    body: message.body.unwrap_or_default(),
                    attributes,
                    has_binary_attributes,
                    receive_count: system_value(
                        MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                    sent_at_ms: system_value(MessageSystemAttributeName::SentTimestamp)
                        .and_then(|n| n.parse().ok()),
                    group_id: system_value(MessageSystemAttributeName::MessageGroupId),
                    dedup_id: system_value(MessageSystemAttributeName::MessageDeduplicationId),
                }
            })
            .collect())
    }
}

impl DlqAdmin for SqsDlqAdmin {
    async fn list(&self) -> Result<Vec<DlqInfo>, PortError> {
        let mut urls = Vec::new();
        let mut token = None;
        loop {
            let output = self
                .client
                .list_queues()
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify(&e, "sqs", "ListQueues"))?;
            urls.extend(output.queue_urls.unwrap_or_default());
            token = output.next_token;
            if token.is_none() {
                break;
            }
        }
        let mut dlqs = Vec::new();
        for url in urls {
            // The operator policy names this stack's queues only: another stack's queue
            // answers AccessDenied, which means "not ours", not a failure of the listing.
            let sources = match self.sources(&url).await {
                Err(err) if err.kind == telepipe_workers::error::PortErrorKind::AccessDenied => {
                    continue
                }
                other => other?,
            };
            if sources.is_empty() && conventional_source(queue_name(&url)).is_none() {
                continue;
            }
            dlqs.push(self.info(&url, sources).await?);
        }
        dlqs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(dlqs)
    }

    async fn find(&self, queue: &str) -> Result<DlqInfo, PortError> {
        let url = self.url(queue).await?;
        let sources = self.sources(&url).await?;
        self.info(&url, sources).await
    }

    async fn peek(&self, queue: &str, max: usize) -> Result<Vec<DlqMessage>, PortError> {
        // SQS cannot read without receiving: receive briefly hidden, then release at once.
        let mut messages: Vec<DlqMessage> = Vec::new();
        while messages.len() < max {
            let batch = self.receive_with(queue, max - messages.len(), 30).await?;
            if batch.is_empty() {
                break;
            }
            messages.extend(batch);
        }
        let receipts: Vec<String> = messages.iter().map(|m| m.receipt.clone()).collect();
        self.release_batch(queue, &receipts).await;
        Ok(messages)
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility_secs: u32,
    ) -> Result<Vec<DlqMessage>, PortError> {
        self.receive_with(queue, max, visibility_secs).await
    }

    async fn send(&self, queue: &str, message: &Outgoing) -> Result<String, PortError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(queue)
            .message_body(&message.body);
        for (name, value) in &message.attributes {
            request = request.message_attributes(name, string_attribute(value));
        }
        // Group and deduplication ids exist on FIFO queues only; a standard queue refuses them.
        if queue.ends_with(".fifo") {
            request = request
                .set_message_group_id(message.group_id.clone())
                .set_message_deduplication_id(message.dedup_id.clone());
        }
        let output = request
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "SendMessage"))?;
        Ok(output.message_id.unwrap_or_default())
    }

    async fn send_batch(
        &self,
        queue: &str,
        messages: &[Outgoing],
    ) -> Vec<Result<String, PortError>> {
        let mut results = Vec::new();
        let mut start = 0;
        while start < messages.len() {
            // Up to 10 entries within the payload limit (at least one: a single message is
            // within the limit or SQS says why not).
            let mut end = start + 1;
            let mut bytes = payload_bytes(&messages[start]);
            while end < messages.len() && end - start < 10 {
                bytes += payload_bytes(&messages[end]);
                if bytes > BATCH_BYTES {
                    break;
                }
                end += 1;
            }
            let entries = messages[start..end].iter().enumerate().map(|(i, message)| {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&message.body);
                for (name, value) in &message.attributes {
                    entry = entry.message_attributes(name, string_attribute(value));
                }
                if queue.ends_with(".fifo") {
                    entry = entry
                        .set_message_group_id(message.group_id.clone())
                        .set_message_deduplication_id(message.dedup_id.clone());
                }
                entry.build().expect("id and body are set")
            });
            let answer = self
                .client
                .send_message_batch()
                .queue_url(queue)
                .set_entries(Some(entries.collect()))
                .send()
                .await;
            let chunk = match answer {
                Ok(output) => in_order(
                    end - start,
                    output.successful.into_iter().map(|s| (s.id, s.message_id)),
                    &output.failed,
                    "SendMessageBatch",
                ),
                Err(e) => vec![Err(classify(&e, "sqs", "SendMessageBatch")); end - start],
            };
            let failed = chunk.iter().any(Result::is_err);
            results.extend(chunk);
            if failed {
                break;
            }
            start = end;
        }
        results
    }

    async fn delete_batch(&self, queue: &str, receipts: &[String]) -> Vec<Result<(), PortError>> {
        let mut results = Vec::new();
        for chunk in receipts.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .expect("id and receipt are set")
            });
            let answer = self
                .client
                .delete_message_batch()
                .queue_url(queue)
                .set_entries(Some(entries.collect()))
                .send()
                .await;
            let chunk_results = match answer {
                Ok(output) => in_order(
                    chunk.len(),
                    output.successful.into_iter().map(|s| (s.id, ())),
                    &output.failed,
                    "DeleteMessageBatch",
                ),
                Err(e) => vec![Err(classify(&e, "sqs", "DeleteMessageBatch")); chunk.len()],
            };
            let failed = chunk_results.iter().any(Result::is_err);
            results.extend(chunk_results);
            if failed {
                break;
            }
        }
        results
    }

    async fn release_batch(&self, queue: &str, receipts: &[String]) -> usize {
        let mut released = 0;
        for chunk in receipts.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt are set")
            });
            if let Ok(output) = self
                .client
                .change_message_visibility_batch()
                .queue_url(queue)
                .set_entries(Some(entries.collect()))
                .send()
                .await
            {
                released += output.successful.len();
            }
        }
        released
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), PortError> {
        self.client
            .delete_message()
            .queue_url(queue)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "DeleteMessage"))?;
        Ok(())
    }

    async fn release(&self, queue: &str, receipt: &str) -> Result<(), PortError> {
        self.client
            .change_message_visibility()
            .queue_url(queue)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "ChangeMessageVisibility"))?;
        Ok(())
    }
}

//! `MessageQueue` on Amazon SQS: dead letters sent to the DLQ with their reason as
//! message attributes, and retries postponed through the visibility timeout.

use super::{classify, AwsContext};
use crate::error::PortError;
use crate::ports::{DeadLetter, MessageQueue};
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

/// SQS allows 10 message attributes; telepipe's own take 3, the source's keep the rest.
pub const MAX_KEPT_ATTRIBUTES: usize = 7;
pub const ATTR_REASON: &str = "telepipe.reason";
pub const ATTR_STAGE: &str = "telepipe.stage";
pub const ATTR_DEAD_LETTER: &str = "telepipe.dead-letter";

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dlq_url: String,
}

impl SqsQueue {
    pub fn new(context: &AwsContext, queue_url: String, dlq_url: String) -> Self {
        Self {
            client: Client::new(&context.sdk),
            queue_url,
            dlq_url,
        }
    }

    pub fn from_client(client: Client, queue_url: String, dlq_url: String) -> Self {
        Self {
            client,
            queue_url,
            dlq_url,
        }
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

impl MessageQueue for SqsQueue {
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), PortError> {
        let details = serde_json::json!({
            "stage": letter.stage,
            "error_class": letter.error_class,
            "reason": letter.reason,
            "context": letter.context,
            "source_message_id": letter.source_message_id,
            "receive_count": letter.receive_count,
        });
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&letter.body)
            .message_attributes(ATTR_REASON, string_attribute(&letter.reason))
            .message_attributes(ATTR_STAGE, string_attribute(letter.stage))
            .message_attributes(ATTR_DEAD_LETTER, string_attribute(&details.to_string()));
        for (name, value) in letter
            .attributes
            .iter()
            .filter(|(n, _)| !n.starts_with("telepipe."))
            .take(MAX_KEPT_ATTRIBUTES)
        {
            request = request.message_attributes(name, string_attribute(value));
        }
        request
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "SendMessage"))?;
        Ok(())
    }

    async fn retry_later(&self, receipt_handle: &str, delay_secs: u32) -> Result<(), PortError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay_secs.min(43_200) as i32)
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "ChangeMessageVisibility"))?;
        Ok(())
    }
}

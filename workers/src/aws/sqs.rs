//! `MessageQueue` on Amazon SQS: dead letters sent to the DLQ with their reason as
//! message attributes, and retries postponed through the visibility timeout.

use super::{classify, AwsContext};
use crate::error::PortError;
use crate::ports::{DeadLetter, MessageQueue};
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dlq_url: String,
}

impl SqsQueue {
    pub fn new(context: &AwsContext, queue_url: String, dlq_url: String) -> Self {
        Self {
            client: context.sqs(),
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
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&letter.body);
        for (name, value) in letter.attributes() {
            request = request.message_attributes(name, string_attribute(&value));
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

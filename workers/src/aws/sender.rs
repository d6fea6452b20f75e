//! `RefeedQueue` on Amazon SQS: plain messages to one queue (the sweeper's re-feed of
//! `clinical`).

use super::{classify, AwsContext};
use crate::error::PortError;
use crate::ports::RefeedQueue;
use aws_sdk_sqs::Client;

#[derive(Clone)]
pub struct SqsSender {
    client: Client,
    queue_url: String,
}

impl SqsSender {
    pub fn new(context: &AwsContext, queue_url: String) -> Self {
        Self::from_client(context.sqs(), queue_url)
    }

    pub fn from_client(client: Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

impl RefeedQueue for SqsSender {
    async fn send(&self, body: &str) -> Result<(), PortError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| classify(&err, "sqs", "SendMessage"))
    }
}

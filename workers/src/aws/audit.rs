//! `AuditLog` on an S3 bucket under Object Lock (compliance mode, default retention set on
//! the bucket): one object per entry at `audit/{session}/{entry_id}.json`. The functions
//! may only put: no role in the stack can delete an entry or shorten its retention.

use super::{classify, AwsContext};
use crate::error::PortError;
use crate::ports::AuditLog;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use aws_sdk_s3::Client;
use telepipe_events::audit::AuditEntry;

#[derive(Clone)]
pub struct S3AuditLog {
    client: Client,
    bucket: String,
}

impl S3AuditLog {
    pub fn new(context: &AwsContext, bucket: String) -> Self {
        let config = aws_sdk_s3::config::Builder::from(&context.sdk)
            .force_path_style(context.s3_force_path_style)
            .build();
        Self {
            client: Client::from_conf(config),
            bucket,
        }
    }

    pub fn from_client(client: Client, bucket: String) -> Self {
        Self { client, bucket }
    }
}

impl AuditLog for S3AuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<(), PortError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(entry.object_key())
            .content_type("application/json")
            // Object Lock buckets require an integrity checksum on every put.
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(entry.to_json().into_bytes()))
            .send()
            .await
            .map_err(|e| classify(&e, "s3", "PutObject"))?;
        Ok(())
    }
}

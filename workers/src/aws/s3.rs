//! `ObjectStore` on Amazon S3.

use super::{classify, AwsContext};
use crate::error::PortError;
use crate::ports::{ObjectBody, ObjectHead, ObjectStore, PutOptions};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;

#[derive(Clone)]
pub struct S3Store {
    client: Client,
}

impl S3Store {
    pub fn new(context: &AwsContext) -> Self {
        Self {
            client: context.s3(),
        }
    }

    pub fn from_client(client: Client) -> Self {
        Self { client }
    }
}

fn body_error(operation: &'static str) -> PortError {
    // The connection broke mid-body: as transient as a dispatch failure.
    PortError::new(crate::error::PortErrorKind::Unavailable, "s3", operation)
}

impl ObjectStore for S3Store {
    async fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectHead, PortError> {
        let output = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify(&e, "s3", "HeadObject"))?;
        Ok(ObjectHead {
            size: output.content_length().unwrap_or(0).max(0) as u64,
            etag: output.e_tag().map(str::to_owned),
            version_id: output
                .version_id()
                .filter(|v| *v != "null")
                .map(str::to_owned),
        })
    }

    async fn get_prefix(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        len: u64,
    ) -> Result<Vec<u8>, PortError> {
        let output = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .range(format!("bytes=0-{}", len.saturating_sub(1)))
            .send()
            .await
            .map_err(|e| classify(&e, "s3", "GetObject"))?;
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|_| body_error("GetObject"))?
            .into_bytes();
        let mut bytes = bytes.to_vec();
        bytes.truncate(len as usize);
        Ok(bytes)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<ObjectBody, PortError> {
        let output = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&e, "s3", "GetObject"))?;
        let etag = output.e_tag().map(str::to_owned);
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|_| body_error("GetObject"))?
            .into_bytes()
            .to_vec();
        Ok(ObjectBody { bytes, etag })
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        options: &PutOptions,
    ) -> Result<(), PortError> {
        let mut request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_content_type(options.content_type.clone());
        if let Some(kms_key) = &options.kms_key_id {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms_key);
        }
        request
            .send()
            .await
            .map_err(|e| classify(&e, "s3", "PutObject"))?;
        Ok(())
    }
}

impl crate::ports::ObjectListing for S3Store {
    async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        max: usize,
    ) -> Result<Vec<String>, PortError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(i32::try_from(max.clamp(1, 1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| classify(&e, "s3", "ListObjectsV2"))?;
        Ok(output
            .contents()
            .iter()
            .filter_map(|object| object.key().map(str::to_owned))
            .take(max)
            .collect())
    }
}

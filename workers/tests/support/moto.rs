//! The SDK configuration of a test against moto (`TELEPIPE_MOTO_URL`): its endpoint, a
//! fixed region and moto's test credentials.

pub async fn sdk(moto: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

//! AWS SDK adapters of the ports, and the one place SDK errors are classified.
//!
//! Endpoints, region and credentials follow the SDK's standard settings
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_REGION`, ...), so the same
//! binaries run against AWS, moto or LocalStack unchanged. `TELEPIPE_S3_FORCE_PATH_STYLE`
//! (default false) is the one addition: emulators on `127.0.0.1` need path-style URLs.

mod audit;
mod chime;
mod comprehend;
mod dynamodb;
mod eventbridge;
mod notify;
mod s3;
mod scheduler;
mod sender;
mod sqs;
mod status_table;
mod transcribe;
mod twilio;
pub mod twilio_webhook;

pub use audit::S3AuditLog;
pub use chime::ChimeMediaPipelines;
pub use comprehend::ComprehendMedicalNlp;
pub use dynamodb::{DynamoIntentLedger, DynamoSessionStore, DynamoSuppressions};
pub use eventbridge::EventBridgePublisher;
pub use notify::{Channels, SesEmail, SmsSender, SnsSms, SqsNotifications};
pub use s3::S3Store;
pub use scheduler::EventBridgeScheduler;
pub use sender::SqsSender;
pub use sqs::SqsQueue;
pub use status_table::{DynamoStatus, BY_STATE_INDEX, OPEN_BY_STATE_INDEX};
pub use transcribe::TranscribeMedical;
pub use twilio::{credentials as twilio_credentials, TwilioSms};

use crate::error::{PortError, PortErrorKind};
use aws_config::BehaviorVersion;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// The loaded SDK configuration every adapter is built from, and the clients adapters
/// share: one process serving several stages (the router) builds each client once.
#[derive(Clone)]
pub struct AwsContext {
    pub sdk: aws_config::SdkConfig,
    pub s3_force_path_style: bool,
    clients: std::sync::Arc<SharedClients>,
}

#[derive(Default)]
struct SharedClients {
    s3: std::sync::OnceLock<aws_sdk_s3::Client>,
    sqs: std::sync::OnceLock<aws_sdk_sqs::Client>,
    dynamodb: std::sync::OnceLock<aws_sdk_dynamodb::Client>,
    eventbridge: std::sync::OnceLock<aws_sdk_eventbridge::Client>,
    /// Secret strings by id, read once per process (the router's stages share the phone key).
    secrets: tokio::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl AwsContext {
    pub fn new(sdk: aws_config::SdkConfig, s3_force_path_style: bool) -> Self {
        Self {
            sdk,
            s3_force_path_style,
            clients: Default::default(),
        }
    }

    /// The S3 client (path-style addressing when configured).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let build = || {
            let config = aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(self.s3_force_path_style)
                .build();
            aws_sdk_s3::Client::from_conf(config)
        };
        self.clients.s3.get_or_init(build).clone()
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let build = || aws_sdk_sqs::Client::new(&self.sdk);
        self.clients.sqs.get_or_init(build).clone()
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let build = || aws_sdk_dynamodb::Client::new(&self.sdk);
        self.clients.dynamodb.get_or_init(build).clone()
    }

    /// A Secrets Manager secret's string, read once per process whoever asks.
    pub async fn secret_string(&self, secret_id: &str) -> Result<String, PortError> {
        let mut secrets = self.clients.secrets.lock().await;
        if let Some(value) = secrets.get(secret_id) {
            return Ok(value.clone());
        }
        let output = aws_sdk_secretsmanager::Client::new(&self.sdk)
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| classify(&e, "secretsmanager", "GetSecretValue"))?;
        let value = output.secret_string().unwrap_or_default().to_owned();
        secrets.insert(secret_id.to_owned(), value.clone());
        Ok(value)
    }

    pub fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        let build = || aws_sdk_eventbridge::Client::new(&self.sdk);
        self.clients.eventbridge.get_or_init(build).clone()
    }

    /// Loads the SDK's standard configuration chain; reads no network.
    pub async fn load() -> Self {
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        // The one flag parser; an unreadable value keeps the SDK's default addressing.
        let s3_force_path_style = crate::config::Env::process()
            .flag("TELEPIPE_S3_FORCE_PATH_STYLE", false)
            .unwrap_or(false);
        Self::new(sdk, s3_force_path_style)
    }
}

/// Sorts an AWS error code (and, failing that, the HTTP status) into a port error kind.
pub fn kind_from_code(code: Option<&str>, status: Option<u16>) -> PortErrorKind {
    use PortErrorKind::*;
    match code {
        Some(
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "SlowDown"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "ProvisionedThroughputExceededException"
            | "KMSThrottlingException"
            | "ThrottledClientException"
            | "AWS.SimpleQueueService.RequestThrottled",
        ) => Throttled,
        Some(
            "LimitExceededException"
            | "ServiceQuotaExceededException"
            | "ResourceLimitExceededException",
        ) => QuotaExceeded,
        Some(
            "ServiceUnavailableException"
            | "ServiceUnavailable"
            | "InternalServerException"
            | "InternalServerError"
            | "InternalFailureException"
            | "InternalFailure"
            | "InternalError"
            | "InternalException"
            | "ServiceFailureException",
        ) => Unavailable,
        Some("RequestTimeout" | "RequestTimeoutException") => Timeout,
        Some(
            "NoSuchKey"
            | "NotFound"
            | "NoSuchBucket"
            | "NoSuchVersion"
            | "ResourceNotFoundException"
            | "NotFoundException"
            | "QueueDoesNotExist"
            | "AWS.SimpleQueueService.NonExistentQueue",
        ) => NotFound,
        Some("ConflictException" | "ResourceAlreadyExistsException") => AlreadyExists,
        Some("ConditionalCheckFailedException" | "TransactionConflictException") => Conflict,
        Some("SendingPausedException") => Unavailable,
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "KMS.AccessDeniedException"
            | "KMS.DisabledException"
            | "InvalidClientTokenId"
            | "AuthorizationError"
            | "ForbiddenException"
            | "UnauthorizedClientException",
        ) => AccessDenied,
        Some(
            "InvalidRequestException"
            | "InvalidEncodingException"
            | "TextSizeLimitExceededException"
            | "BadRequestException"
            | "ValidationException"
            | "InvalidParameterValue"
            | "InvalidArgument"
            | "MalformedDetail"
            | "InvalidRange"
            | "InvalidMessageContents"
            | "UnsupportedOperation"
            | "InvalidParameter"
            | "InvalidParameterException"
            | "EndpointDisabled"
            | "MessageRejected"
            | "MailFromDomainNotVerifiedException",
        ) => InvalidRequest,
        _ => match status {
            Some(404) => NotFound,
            Some(429) => Throttled,
            Some(408) => Timeout,
            Some(403) => AccessDenied,
            Some(500..=599) => Unavailable,
            _ => Other,
        },
    }
}

/// Classifies any SDK error. Keeps the error code and status, never the message.
pub fn classify<E: ProvideErrorMetadata>(
    err: &SdkError<E>,
    service: &'static str,
    operation: &'static str,
) -> PortError {
    let error = |kind| PortError::new(kind, service, operation);
    match err {
        SdkError::TimeoutError(_) => error(PortErrorKind::Timeout),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => error(PortErrorKind::Timeout),
        SdkError::DispatchFailure(_) => error(PortErrorKind::Unavailable),
        SdkError::ResponseError(response) => {
            let status = response.raw().status().as_u16();
            error(kind_from_code(None, Some(status))).with_status(status)
        }
        SdkError::ServiceError(service_error) => {
            let status = service_error.raw().status().as_u16();
            let code = service_error.err().code();
            let mut port_error = error(kind_from_code(code, Some(status))).with_status(status);
            if let Some(code) = code {
                port_error = port_error.with_code(code);
            }
            port_error
        }
        // Includes credential resolution failures, which can be transient.
        _ => error(PortErrorKind::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_win_over_statuses() {
        assert_eq!(
            kind_from_code(Some("TooManyRequestsException"), Some(400)),
            PortErrorKind::Throttled
        );
        assert_eq!(
            kind_from_code(Some("LimitExceededException"), Some(400)),
            PortErrorKind::QuotaExceeded
        );
        assert_eq!(
            kind_from_code(Some("ConflictException"), Some(409)),
            PortErrorKind::AlreadyExists
        );
        assert_eq!(
            kind_from_code(Some("InvalidRequestException"), Some(400)),
            PortErrorKind::InvalidRequest
        );
        assert_eq!(
            kind_from_code(Some("NoSuchKey"), Some(404)),
            PortErrorKind::NotFound
        );
        assert_eq!(
            kind_from_code(Some("InternalServerException"), Some(500)),
            PortErrorKind::Unavailable
        );
    }

    #[test]
    fn statuses_classify_unknown_codes() {
        assert_eq!(kind_from_code(None, Some(404)), PortErrorKind::NotFound);
        assert_eq!(kind_from_code(None, Some(503)), PortErrorKind::Unavailable);
        assert_eq!(
            kind_from_code(Some("Weird"), Some(429)),
            PortErrorKind::Throttled
        );
        assert_eq!(
            kind_from_code(Some("Weird"), Some(400)),
            PortErrorKind::Other
        );
    }
}

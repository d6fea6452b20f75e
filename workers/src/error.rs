//! The error taxonomy: every failure is retryable or permanent, with a machine-readable
//! reason and context made of ids only (never keys, transcript or entity text).

use std::fmt;

/// What the caller should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Throttling, quota, 5xx, timeouts: the same input will likely succeed later.
    Retryable,
    /// Bad input, missing object, validation: the same input will fail again; dead-letter it.
    Permanent,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
        }
    }
}

/// What went wrong at a port, independent of the technology behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortErrorKind {
    NotFound,
    AlreadyExists,
    Throttled,
    /// A service quota (e.g. Transcribe concurrent jobs) is exhausted for now.
    QuotaExceeded,
    /// 5xx or service unavailable.
    Unavailable,
    Timeout,
    /// The service refused the request as malformed; resending it cannot help.
    InvalidRequest,
    AccessDenied,
    /// A conditional write lost to a concurrent writer: re-read and try again.
    Conflict,
    /// Anything unclassified; treated as retryable so nothing is dead-lettered on a guess.
    Other,
}

impl PortErrorKind {
    pub fn class(self) -> ErrorClass {
        match self {
            Self::Throttled
            | Self::QuotaExceeded
            | Self::Unavailable
            | Self::Timeout
            | Self::Conflict
            | Self::Other => ErrorClass::Retryable,
            Self::NotFound | Self::AlreadyExists | Self::InvalidRequest | Self::AccessDenied => {
                ErrorClass::Permanent
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Throttled => "throttled",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::InvalidRequest => "invalid_request",
            Self::AccessDenied => "access_denied",
            Self::Conflict => "conflict",
            Self::Other => "other",
        }
    }
}

/// A failed call through a port. Holds the service's error code and HTTP status but not its
/// message: service messages can echo request content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError {
    pub kind: PortErrorKind,
    pub service: &'static str,
    pub operation: &'static str,
    pub code: Option<String>,
    pub status: Option<u16>,
    /// The request provably never reached the service (the connection was refused before
    /// a byte was written): for at-most-once sends, the one failure besides an explicit
    /// throttling answer that proves nothing was accepted.
    pub not_sent: bool,
}

impl PortError {
    pub fn new(kind: PortErrorKind, service: &'static str, operation: &'static str) -> Self {
        Self {
            kind,
            service,
            operation,
            code: None,
            status: None,
            not_sent: false,
        }
    }

    /// Marks the request as never sent (see [`PortError::not_sent`]).
    pub fn never_sent(mut self) -> Self {
        self.not_sent = true;
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn class(&self) -> ErrorClass {
        self.kind.class()
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{} failed: {}",
            self.service,
            self.operation,
            self.kind.as_str()
        )?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(status) = self.status {
            write!(f, " [HTTP {status}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for PortError {}

/// A stage's verdict on one input: class, a stable reason code, and id-only context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {reason}: {context}{}", class.as_str(), source.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())]
pub struct StageError {
    pub class: ErrorClass,
    /// Stable snake_case code (`object_missing`, `throttled`, ...) for dead-letter attributes and metrics.
    pub reason: String,
    /// Ids that locate the failure (session, job, object ref); never PHI.
    pub context: String,
    pub source: Option<PortError>,
}

impl StageError {
    pub fn retryable(reason: impl Into<String>, context: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Retryable,
            reason: reason.into(),
            context: context.into(),
            source: None,
        }
    }

    pub fn permanent(reason: impl Into<String>, context: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Permanent,
            reason: reason.into(),
            context: context.into(),
            source: None,
        }
    }

    /// Wraps a port failure, keeping its class; the reason is the port error kind.
    pub fn from_port(err: PortError, context: impl Into<String>) -> Self {
        Self {
            class: err.class(),
            reason: err.kind.as_str().to_owned(),
            context: context.into(),
            source: Some(err),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Retryable
    }
}

/// Marks any port result with the ids it concerns: `store.head(..).await.context(&ids)?`.
pub trait PortResultExt<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StageError>;
}

impl<T> PortResultExt<T> for Result<T, PortError> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StageError> {
        self.map_err(|err| StageError::from_port(err, context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_documented_class() {
        use PortErrorKind::*;
        for kind in [
            Throttled,
            QuotaExceeded,
            Unavailable,
            Timeout,
            Conflict,
            Other,
        ] {
            assert_eq!(kind.class(), ErrorClass::Retryable, "{kind:?}");
        }
        for kind in [NotFound, AlreadyExists, InvalidRequest, AccessDenied] {
            assert_eq!(kind.class(), ErrorClass::Permanent, "{kind:?}");
        }
    }

    #[test]
    fn stage_errors_from_ports_keep_class_and_say_where() {
        let err = StageError::from_port(
            PortError::new(
                PortErrorKind::Throttled,
                "transcribe",
                "StartMedicalTranscriptionJob",
            )
            .with_code("LimitExceededException")
            .with_status(400),
            "session=s1",
        );
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            "retryable throttled: session=s1 (transcribe.StartMedicalTranscriptionJob failed: throttled (LimitExceededException) [HTTP 400])"
        );
    }
}

//! The error taxonomy: every failure is retryable or permanent, with a machine-readable
//! reason and context made of ids only (never keys, transcript or entity text).

use std::fmt;
use telepipe_events::pipeline::RejectReason;

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

/// Why a stage failed an input: the stable snake_case code (`as_str`) that dead-letter
/// attributes, status entries and metrics carry. Typed, so no stage recovers a kind of
/// failure by comparing strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// An upload intake refused; intake records it as rejected before it returns.
    Rejected(RejectReason),
    /// A port failed; its kind is the code.
    Port(PortErrorKind),
    /// An SMS or email provider refused a send for good (`provider_rejected:{kind}`).
    ProviderRejected(PortErrorKind),
    /// An event names an S3 key that does not decode.
    InvalidKey,
    /// A transcript key is not `{prefix}{session_id}/{job_name}.json`.
    UnexpectedTranscriptKey,
    /// The transcript named is gone.
    TranscriptMissing,
    /// The transcript exceeds `TELEPIPE_MAX_TRANSCRIPT_BYTES`.
    TranscriptTooLarge,
    /// The transcript is not Transcribe's JSON.
    MalformedTranscript,
    /// The transcript has more speakers than a visit can.
    TooManySpeakers,
    /// A media pipeline event does not parse.
    MalformedCaptureEvent,
    /// A session event does not parse.
    MalformedSessionEvent,
    /// A notification request does not parse.
    MalformedNotificationRequest,
    /// A notification cannot be rendered from the request.
    MalformedNotification,
    /// An inbound text does not parse.
    MalformedInboundSms,
    /// The clinic name cannot go into a message.
    InvalidClinicName,
    /// The time zone is not an IANA name.
    InvalidTimeZone,
    /// The session has no time zone.
    NoTimeZone,
    /// The local time does not exist in its zone.
    InvalidLocalTime,
    /// A time does not parse.
    InvalidTime,
    /// The start time does not parse.
    InvalidStart,
    /// The join link is not on an allowed host.
    InvalidJoinUrl,
    /// The session id is not 1–128 of letters, digits, `.`, `_`, `-`.
    InvalidSessionId,
    /// The address is not a phone number or email address.
    InvalidAddress,
    /// The sender of a text is not a phone number.
    InvalidSender,
    /// The session was never booked.
    SessionNotBooked,
    /// No state is known for the session.
    UnknownSession,
    /// The session has no start time.
    SessionWithoutTime,
    /// Another attempt holds the notification's claim.
    NotificationInFlight,
    /// The status store refused a transition.
    StatusWriteFailed,
    /// The stage panicked on the message.
    WorkerPanic,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected(reason) => reason.as_str(),
            Reason::Port(kind) => kind.as_str(),
            Reason::ProviderRejected(kind) => match kind {
                PortErrorKind::NotFound => "provider_rejected:not_found",
                PortErrorKind::AlreadyExists => "provider_rejected:already_exists",
                PortErrorKind::Throttled => "provider_rejected:throttled",
                PortErrorKind::QuotaExceeded => "provider_rejected:quota_exceeded",
                PortErrorKind::Unavailable => "provider_rejected:unavailable",
                PortErrorKind::Timeout => "provider_rejected:timeout",
                PortErrorKind::InvalidRequest => "provider_rejected:invalid_request",
                PortErrorKind::AccessDenied => "provider_rejected:access_denied",
                PortErrorKind::Conflict => "provider_rejected:conflict",
                PortErrorKind::Other => "provider_rejected:other",
            },
            Reason::InvalidKey => "invalid_key",
            Reason::UnexpectedTranscriptKey => "unexpected_transcript_key",
            Reason::TranscriptMissing => "transcript_missing",
            Reason::TranscriptTooLarge => "transcript_too_large",
            Reason::MalformedTranscript => "malformed_transcript",
            Reason::TooManySpeakers => "too_many_speakers",
            Reason::MalformedCaptureEvent => "malformed_capture_event",
            Reason::MalformedSessionEvent => "malformed_session_event",
            Reason::MalformedNotificationRequest => "malformed_notification_request",
            Reason::MalformedNotification => "malformed_notification",
            Reason::MalformedInboundSms => "malformed_inbound_sms",
            Reason::InvalidClinicName => "invalid_clinic_name",
            Reason::InvalidTimeZone => "invalid_time_zone",
            Reason::NoTimeZone => "no_time_zone",
            Reason::InvalidLocalTime => "invalid_local_time",
            Reason::InvalidTime => "invalid_time",
            Reason::InvalidStart => "invalid_start",
            Reason::InvalidJoinUrl => "invalid_join_url",
            Reason::InvalidSessionId => "invalid_session_id",
            Reason::InvalidAddress => "invalid_address",
            Reason::InvalidSender => "invalid_sender",
            Reason::SessionNotBooked => "session_not_booked",
            Reason::UnknownSession => "unknown_session",
            Reason::SessionWithoutTime => "session_without_time",
            Reason::NotificationInFlight => "notification_in_flight",
            Reason::StatusWriteFailed => "status_write_failed",
            Reason::WorkerPanic => "worker_panic",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and logs compare reasons with their codes.
impl PartialEq<&str> for Reason {
    fn eq(&self, code: &&str) -> bool {
        self.as_str() == *code
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, code: &str) -> bool {
        self.as_str() == code
    }
}

impl From<RejectReason> for Reason {
    fn from(reason: RejectReason) -> Self {
        Reason::Rejected(reason)
    }
}

/// A stage's verdict on one input: class, a stable reason code, and id-only context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {reason}: {context}{}", class.as_str(), source.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())]
pub struct StageError {
    pub class: ErrorClass,
    /// Why, as a stable code for dead-letter attributes and metrics.
    pub reason: Reason,
    /// Ids that locate the failure (session, job, object ref); never PHI.
    pub context: String,
    pub source: Option<PortError>,
}

impl StageError {
    pub fn retryable(reason: impl Into<Reason>, context: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Retryable,
            reason: reason.into(),
            context: context.into(),
            source: None,
        }
    }

    pub fn permanent(reason: impl Into<Reason>, context: impl Into<String>) -> Self {
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
            reason: Reason::Port(err.kind),
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

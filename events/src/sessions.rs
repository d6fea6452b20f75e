//! Session-state inputs of the `sessions` worker: the telehealth platform's application
//! events, Amazon Chime SDK meeting events, telepipe's own recording events, and the
//! recording check the worker schedules for itself.
//!
//! Application events carry a per-session `version` that only grows, so the worker can
//! apply them in version order whatever order they arrive in. Chime events carry no
//! version: they state facts that, once true, stay true (a meeting started, ended, an
//! attendee joined), so their order does not matter.
//!
//! Contact addresses appear only in `Session Scheduled`, the one input the worker keeps
//! in its encrypted state store; nothing derived from them leaves it.

use crate::pipeline::{self, PipelineEvent};
pub use crate::pipeline::{redact_quoted, CHIME_SOURCE};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Default `source` of the platform's session events.
pub const DEFAULT_SESSIONS_SOURCE: &str = "telehealth.sessions";
pub const CHIME_DETAIL_TYPE: &str = "Chime Meeting State Change";
/// Chime `eventType`s the worker acts on.
pub const CHIME_EVENT_TYPES: [&str; 4] = [
    "chime:MeetingStarted",
    "chime:MeetingEnded",
    "chime:AttendeeJoined",
    "chime:AttendeeLeft",
];

/// A session-event detail type with its EventBridge `detail-type`.
pub trait SessionEvent: Serialize + DeserializeOwned + JsonSchema {
    const DETAIL_TYPE: &'static str;
    const SCHEMA_NAME: &'static str;
    fn session_id(&self) -> &str;
    fn version(&self) -> u64;
}

/// How a participant is reached.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ContactChannel {
    Sms,
    Email,
}

impl ContactChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
        }
    }
}

/// A participant of a session: the platform's reference for them and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Participant {
    /// The platform's opaque id for the person (also Chime's `externalUserId`).
    pub reference: String,
    pub channel: ContactChannel,
    /// E.164 phone number for `sms`, email address for `email`.
    pub address: String,
    /// BCP 47 language tag overriding the session's locale for this participant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// A session was booked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionScheduled {
    pub session_id: String,
    /// Grows with every change the platform makes to the session.
    pub version: u64,
    /// RFC 3339 start time with its offset, e.g. `2026-03-09T10:00:00-04:00`.
    pub start: String,
    pub duration_minutes: u32,
    /// IANA time zone of the patient (reminders are timed and worded in it).
    pub patient_time_zone: String,
    /// BCP 47 language tag of the patient's messages (`en`, `es`, `es-MX`, ...).
    pub locale: String,
    pub patient: Participant,
    pub clinician: Participant,
    /// Shown in messages; the deployment's default clinic name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic_name: Option<String>,
    /// Link the patient joins from; the deployment's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_url: Option<String>,
}

/// A session was moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionRescheduled {
    pub session_id: String,
    pub version: u64,
    pub start: String,
    pub duration_minutes: u32,
    /// Present when the patient's zone changed too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_time_zone: Option<String>,
}

/// A session was cancelled. Cancellation is final: rebooking makes a new session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionCancelled {
    pub session_id: String,
    pub version: u64,
}

/// A participant entered the waiting room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitingRoomJoined {
    pub session_id: String,
    pub version: u64,
    pub participant_reference: String,
}

/// The clinician admitted the patient: the session is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionStarted {
    pub session_id: String,
    pub version: u64,
}

/// The session is over; a recording should follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionEnded {
    pub session_id: String,
    pub version: u64,
}

/// Where a session stands, in the vocabulary of platforms that track a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlatformStatus {
    /// The patient is in the waiting room.
    Waiting,
    /// The visit is under way (the clinician admitted the patient).
    Active,
    Ended,
}

/// A platform's status change, mapped onto the session events: `waiting` is the patient
/// joining the waiting room, `active` a start, `ended` an end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionStatusChanged {
    pub session_id: String,
    pub version: u64,
    pub status: PlatformStatus,
}

/// The clinician admitted the patient from the waiting room (a start, in telepipe's terms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitingRoomAdmitted {
    pub session_id: String,
    pub version: u64,
}

/// A booking from an SMS-first scheduling tool: a local date and time (in the clinic's
/// zone, `TELEPIPE_CLINIC_TIME_ZONE`, unless the patient's is given) and no clinician, so
/// reminders go to the patient only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AppointmentBooked {
    pub session_id: String,
    pub version: u64,
    /// `YYYY-MM-DD`, local.
    pub date: String,
    /// `HH:MM`, local.
    pub time: String,
    pub duration_minutes: u32,
    pub patient: Participant,
    /// BCP 47 language tag of the patient's messages; `en` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// The patient's IANA zone, when it differs from the clinic's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_url: Option<String>,
}

macro_rules! session_event {
    ($type:ty, $detail_type:literal, $schema:literal) => {
        impl SessionEvent for $type {
            const DETAIL_TYPE: &'static str = $detail_type;
            const SCHEMA_NAME: &'static str = $schema;
            fn session_id(&self) -> &str {
                &self.session_id
            }
            fn version(&self) -> u64 {
                self.version
            }
        }
    };
}

session_event!(SessionScheduled, "Session Scheduled", "session-scheduled");
session_event!(
    SessionRescheduled,
    "Session Rescheduled",
    "session-rescheduled"
);
session_event!(SessionCancelled, "Session Cancelled", "session-cancelled");
session_event!(
    WaitingRoomJoined,
    "Waiting Room Joined",
    "waiting-room-joined"
);
session_event!(SessionStarted, "Session Started", "session-started");
session_event!(SessionEnded, "Session Ended", "session-ended");
session_event!(
    SessionStatusChanged,
    "Session Status Changed",
    "session-status-changed"
);
session_event!(
    WaitingRoomAdmitted,
    "Waiting Room Admitted",
    "waiting-room-admitted"
);
session_event!(
    AppointmentBooked,
    "Appointment Booked",
    "appointment-booked"
);

/// The `detail-type`s of the platform's session events.
pub const SESSION_DETAIL_TYPES: [&str; 9] = [
    SessionScheduled::DETAIL_TYPE,
    SessionRescheduled::DETAIL_TYPE,
    SessionCancelled::DETAIL_TYPE,
    WaitingRoomJoined::DETAIL_TYPE,
    SessionStarted::DETAIL_TYPE,
    SessionEnded::DETAIL_TYPE,
    SessionStatusChanged::DETAIL_TYPE,
    WaitingRoomAdmitted::DETAIL_TYPE,
    AppointmentBooked::DETAIL_TYPE,
];

/// What a Chime meeting event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChimeChange {
    MeetingStarted,
    MeetingEnded,
    AttendeeJoined,
    AttendeeLeft,
}

/// The fields of a `Chime Meeting State Change` detail the worker uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChimeMeetingEvent {
    pub change: ChimeChange,
    /// `externalMeetingId`: the platform sets it to the session id.
    pub session_id: String,
    /// `externalUserId` of the attendee, for attendee events.
    pub attendee_reference: Option<String>,
}

/// Sent by the worker to itself, through a one-time schedule, some time after a session
/// ended: by then its recording should have arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecordingCheck {
    /// Always `recording_check`: tells this message from EventBridge envelopes.
    pub kind: RecordingCheckKind,
    pub schema_version: u32,
    pub session_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingCheckKind {
    RecordingCheck,
}

impl RecordingCheck {
    pub fn new(session_id: &str) -> Self {
        Self {
            kind: RecordingCheckKind::RecordingCheck,
            schema_version: pipeline::schema_version(),
            session_id: session_id.to_owned(),
        }
    }
}

/// One message on the sessions queue, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionInput {
    Scheduled(Box<SessionScheduled>),
    /// A booking with a local date and time and no clinician.
    Booked(Box<AppointmentBooked>),
    /// The patient is in the waiting room (a platform's `waiting` status; no participant
    /// reference needed: the booking's patient).
    PatientWaiting {
        session_id: String,
    },
    Rescheduled(SessionRescheduled),
    Cancelled(SessionCancelled),
    WaitingRoomJoined(WaitingRoomJoined),
    Started(SessionStarted),
    Ended(SessionEnded),
    Chime(ChimeMeetingEvent),
    /// telepipe saw a recording of the session (`Transcription Started` or `Recording Rejected`).
    RecordingArrived {
        session_id: String,
    },
    RecordingCheck(RecordingCheck),
    /// The session's meeting capture will not become a recording (`Recording Capture Failed`).
    CaptureFailed {
        session_id: String,
        reason: crate::capture::CaptureFailure,
    },
    /// A well-formed event of a type the worker has no use for (e.g. another Chime event type).
    Ignored {
        detail_type: String,
    },
}

impl SessionInput {
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Self::Scheduled(e) => Some(&e.session_id),
            Self::Booked(e) => Some(&e.session_id),
            Self::PatientWaiting { session_id } => Some(session_id),
            Self::Rescheduled(e) => Some(&e.session_id),
            Self::Cancelled(e) => Some(&e.session_id),
            Self::WaitingRoomJoined(e) => Some(&e.session_id),
            Self::Started(e) => Some(&e.session_id),
            Self::Ended(e) => Some(&e.session_id),
            Self::Chime(e) => Some(&e.session_id),
            Self::RecordingArrived { session_id } => Some(session_id),
            Self::RecordingCheck(check) => Some(&check.session_id),
            Self::CaptureFailed { session_id, .. } => Some(session_id),
            Self::Ignored { .. } => None,
        }
    }
}

/// Why a message is not a session input. The text names fields, never their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParseError(pub String);

impl fmt::Display for SessionParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SessionParseError {}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    detail: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChimeDetail {
    event_type: String,
    #[serde(default)]
    external_meeting_id: Option<String>,
    #[serde(default)]
    external_user_id: Option<String>,
}

#[derive(Deserialize)]
struct SessionIdOnly {
    #[serde(default)]
    session_id: Option<String>,
}

fn detail<T: DeserializeOwned>(
    detail_type: &str,
    value: serde_json::Value,
) -> Result<T, SessionParseError> {
    serde_json::from_value(value).map_err(|err| {
        SessionParseError(format!(
            "{detail_type} detail: {}",
            redact_quoted(&err.to_string())
        ))
    })
}

/// Parses a sessions-queue message: an EventBridge envelope (from the rules) or a
/// `RecordingCheck` (from the worker's own schedules). `sessions_source` is the
/// configured `source` of the platform's events.
pub fn parse_session_message(
    body: &str,
    sessions_source: &str,
) -> Result<SessionInput, SessionParseError> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|err| {
        SessionParseError(format!(
            "not JSON (line {}, column {})",
            err.line(),
            err.column()
        ))
    })?;
    if value.get("kind").and_then(|k| k.as_str()) == Some("recording_check") {
        return detail("recording check", value).map(SessionInput::RecordingCheck);
    }
    let envelope: Envelope = serde_json::from_value(value)
        .map_err(|err| SessionParseError(format!("not an EventBridge event: {err}")))?;
    let Envelope {
        detail_type,
        source,
        detail: body,
    } = envelope;
    let parsed = if source == sessions_source {
        match detail_type.as_str() {
            SessionScheduled::DETAIL_TYPE => {
                SessionInput::Scheduled(Box::new(detail(&detail_type, body)?))
            }
            SessionRescheduled::DETAIL_TYPE => {
                SessionInput::Rescheduled(detail(&detail_type, body)?)
            }
            SessionCancelled::DETAIL_TYPE => SessionInput::Cancelled(detail(&detail_type, body)?),
            WaitingRoomJoined::DETAIL_TYPE => {
                SessionInput::WaitingRoomJoined(detail(&detail_type, body)?)
            }
            SessionStarted::DETAIL_TYPE => SessionInput::Started(detail(&detail_type, body)?),
            SessionEnded::DETAIL_TYPE => SessionInput::Ended(detail(&detail_type, body)?),
            SessionStatusChanged::DETAIL_TYPE => {
                let change: SessionStatusChanged = detail(&detail_type, body)?;
                let (session_id, version) = (change.session_id, change.version);
                match change.status {
                    PlatformStatus::Waiting => SessionInput::PatientWaiting { session_id },
                    PlatformStatus::Active => SessionInput::Started(SessionStarted {
                        session_id,
                        version,
                    }),
                    PlatformStatus::Ended => SessionInput::Ended(SessionEnded {
                        session_id,
                        version,
                    }),
                }
            }
            WaitingRoomAdmitted::DETAIL_TYPE => {
                let admitted: WaitingRoomAdmitted = detail(&detail_type, body)?;
                SessionInput::Started(SessionStarted {
                    session_id: admitted.session_id,
                    version: admitted.version,
                })
            }
            AppointmentBooked::DETAIL_TYPE => {
                SessionInput::Booked(Box::new(detail(&detail_type, body)?))
            }
            _ => SessionInput::Ignored { detail_type },
        }
    } else if source == CHIME_SOURCE && detail_type == CHIME_DETAIL_TYPE {
        let chime: ChimeDetail = detail(&detail_type, body)?;
        let change = match chime.event_type.as_str() {
            "chime:MeetingStarted" => ChimeChange::MeetingStarted,
            "chime:MeetingEnded" => ChimeChange::MeetingEnded,
            "chime:AttendeeJoined" => ChimeChange::AttendeeJoined,
            "chime:AttendeeLeft" => ChimeChange::AttendeeLeft,
            _ => {
                return Ok(SessionInput::Ignored {
                    detail_type: chime.event_type,
                })
            }
        };
        // A meeting created without an ExternalMeetingId is not a telepipe session.
        let Some(session_id) = chime.external_meeting_id.filter(|id| !id.is_empty()) else {
            return Ok(SessionInput::Ignored {
                detail_type: chime.event_type,
            });
        };
        SessionInput::Chime(ChimeMeetingEvent {
            change,
            session_id,
            attendee_reference: chime.external_user_id,
        })
    } else if source == pipeline::DEFAULT_SOURCE
        && matches!(
            detail_type.as_str(),
            pipeline::TranscriptionStarted::DETAIL_TYPE | pipeline::RecordingRejected::DETAIL_TYPE
        )
    {
        let ids: SessionIdOnly = detail(&detail_type, body)?;
        match ids.session_id {
            Some(session_id) => SessionInput::RecordingArrived { session_id },
            // A rejected upload whose key held no session id cannot be matched to a session.
            None => SessionInput::Ignored { detail_type },
        }
    } else if source == pipeline::DEFAULT_SOURCE
        && detail_type == crate::capture::RecordingCaptureFailed::DETAIL_TYPE
    {
        let failed: crate::capture::RecordingCaptureFailed = detail(&detail_type, body)?;
        SessionInput::CaptureFailed {
            session_id: failed.session_id,
            reason: failed.reason,
        }
    } else {
        return Err(SessionParseError(format!(
            "unexpected event source/detail-type ({source} / {detail_type}): the rule routing to this queue is wider than the worker"
        )));
    };
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(source: &str, detail_type: &str, detail: serde_json::Value) -> String {
        serde_json::json!({
            "version": "0", "id": "e1", "detail-type": detail_type, "source": source,
            "account": "111122223333", "time": "2026-03-01T12:00:00Z", "region": "us-east-1",
            "resources": [], "detail": detail
        })
        .to_string()
    }

    #[test]
    fn chime_events_map_to_the_session_by_external_meeting_id() {
        let body = envelope(
            CHIME_SOURCE,
            CHIME_DETAIL_TYPE,
            serde_json::json!({"version": "0", "eventType": "chime:AttendeeJoined", "meetingId": "m-1",
                "attendeeId": "a-1", "externalUserId": "patient-7", "externalMeetingId": "sess-1"}),
        );
        let parsed = parse_session_message(&body, DEFAULT_SESSIONS_SOURCE).unwrap();
        assert_eq!(
            parsed,
            SessionInput::Chime(ChimeMeetingEvent {
                change: ChimeChange::AttendeeJoined,
                session_id: "sess-1".into(),
                attendee_reference: Some("patient-7".into())
            })
        );
        let other = envelope(
            CHIME_SOURCE,
            CHIME_DETAIL_TYPE,
            serde_json::json!({"eventType": "chime:AttendeeDropped", "externalMeetingId": "s"}),
        );
        assert!(matches!(
            parse_session_message(&other, DEFAULT_SESSIONS_SOURCE).unwrap(),
            SessionInput::Ignored { .. }
        ));
        let anonymous = envelope(
            CHIME_SOURCE,
            CHIME_DETAIL_TYPE,
            serde_json::json!({"eventType": "chime:MeetingEnded"}),
        );
        assert!(matches!(
            parse_session_message(&anonymous, DEFAULT_SESSIONS_SOURCE),
            Ok(SessionInput::Ignored { .. })
        ));
    }

    #[test]
    fn the_configured_source_is_the_only_one_accepted_for_session_events() {
        let detail = serde_json::json!({"session_id": "s-1", "version": 3});
        let body = envelope("acme.sessions", "Session Started", detail);
        assert!(parse_session_message(&body, DEFAULT_SESSIONS_SOURCE).is_err());
        assert_eq!(
            parse_session_message(&body, "acme.sessions").unwrap(),
            SessionInput::Started(SessionStarted {
                session_id: "s-1".into(),
                version: 3
            })
        );
    }

    #[test]
    fn recordings_and_checks_are_recognised() {
        let started = envelope(
            "telepipe",
            "Transcription Started",
            serde_json::json!({"session_id": "s-9", "job_name": "j"}),
        );
        assert_eq!(
            parse_session_message(&started, DEFAULT_SESSIONS_SOURCE).unwrap(),
            SessionInput::RecordingArrived {
                session_id: "s-9".into()
            }
        );
        let check = serde_json::to_string(&RecordingCheck::new("s-9")).unwrap();
        assert_eq!(
            parse_session_message(&check, DEFAULT_SESSIONS_SOURCE).unwrap(),
            SessionInput::RecordingCheck(RecordingCheck::new("s-9"))
        );
    }

    #[test]
    fn parse_errors_name_fields_not_values() {
        let body = envelope(
            DEFAULT_SESSIONS_SOURCE,
            "Session Scheduled",
            serde_json::json!({"session_id": "s-1", "version": "+1 555 0100 secret"}),
        );
        let err = parse_session_message(&body, DEFAULT_SESSIONS_SOURCE)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Session Scheduled"), "{err}");
        assert!(!err.contains("555"), "{err}");
        let not_json = parse_session_message("{\"phone\": +1555", DEFAULT_SESSIONS_SOURCE)
            .unwrap_err()
            .to_string();
        assert!(!not_json.contains("1555"), "{not_json}");
    }

    #[test]
    fn redaction_cuts_values_in_quotes_and_backticks_but_keeps_field_names() {
        let number = serde_json::from_str::<SessionScheduled>(r#"{"session_id": 15551234567}"#)
            .unwrap_err()
            .to_string();
        assert!(number.contains("15551234567"), "serde quotes it: {number}");
        let redacted = redact_quoted(&number);
        assert!(!redacted.contains("15551234567"), "{redacted}");
        assert!(redacted.contains("invalid type"), "{redacted}");
        assert_eq!(
            redact_quoted("missing field `start` at line 1"),
            "missing field `start` at line 1"
        );
        assert_eq!(
            redact_quoted("unknown variant `+15551234567`, expected `sms` or `email`"),
            "unknown variant `<redacted>`, expected `sms` or `email`"
        );
        assert_eq!(
            redact_quoted(r#"invalid type: string "+1 555 0100", expected u32"#),
            r#"invalid type: string "<redacted>", expected u32"#
        );
    }
}

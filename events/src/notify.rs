//! What the `sessions` and `notifier` workers emit: the notification requests they pass
//! through the notifications queue, and the events they publish on the telepipe bus.
//!
//! Nothing here carries an address, a name, a time of appointment or message text: a
//! request names its recipient by role and the notifier looks the address up in the
//! session store at send time; events carry ids, kinds, channels, offsets and reasons.

use crate::ids::digest_hex;
use crate::pipeline::{schema_version, PipelineEvent};
use crate::sessions::ContactChannel;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a notification is for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Before the appointment, at an offset of the reminder policy.
    Reminder,
    /// Sent at once when a booking is too close for any reminder offset (if configured).
    Confirmation,
    /// To the clinician: the patient is waiting.
    WaitingRoomAlert,
    /// To the patient: the visit was cancelled (once per session).
    CancellationNotice,
    /// To the patient: the visit moved; says the new time (once per new time).
    RescheduleNotice,
    /// To the patient: the answer to a HELP text (what to reply, how to stop texts).
    Help,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reminder => "reminder",
            Self::Confirmation => "confirmation",
            Self::WaitingRoomAlert => "waiting_room_alert",
            Self::CancellationNotice => "cancellation_notice",
            Self::RescheduleNotice => "reschedule_notice",
            Self::Help => "help",
        }
    }
}

/// Who a notification is addressed to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    Patient,
    Clinician,
}

impl Recipient {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Clinician => "clinician",
        }
    }
}

/// A message on the notifications queue: one intent to notify someone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationRequest {
    pub schema_version: u32,
    /// Digest of (session, kind, recipient, channel, offset, appointment start, sequence):
    /// the notifier sends at most once per intent id.
    pub intent_id: String,
    pub session_id: String,
    pub kind: NotificationKind,
    pub recipient: Recipient,
    pub channel: ContactChannel,
    /// Minutes before the start the reminder policy asked for (reminders only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_minutes: Option<u32>,
    /// Start the notification was planned for, UTC RFC 3339: a reminder for a session
    /// that has moved since is skipped, not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_start: Option<String>,
    /// Distinguishes repeated alerts of one kind (the n-th waiting-room alert).
    #[serde(default)]
    pub sequence: u32,
}

impl NotificationRequest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        session_id: &str,
        kind: NotificationKind,
        recipient: Recipient,
        channel: ContactChannel,
        offset_minutes: Option<u32>,
        appointment_start: Option<String>,
        sequence: u32,
    ) -> Self {
        let offset = offset_minutes.map(|m| m.to_string()).unwrap_or_default();
        let intent_id = digest_hex(
            &[
                session_id.as_bytes(),
                kind.as_str().as_bytes(),
                recipient.as_str().as_bytes(),
                channel.as_str().as_bytes(),
                offset.as_bytes(),
                appointment_start.as_deref().unwrap_or("").as_bytes(),
                sequence.to_string().as_bytes(),
            ],
            16,
        );
        Self {
            schema_version: schema_version(),
            intent_id,
            session_id: session_id.to_owned(),
            kind,
            recipient,
            channel,
            offset_minutes,
            appointment_start,
            sequence,
        }
    }
}

/// A reminder was scheduled (one event per one-time schedule created).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReminderScheduled {
    pub schema_version: u32,
    pub event_id: String,
    pub session_id: String,
    pub intent_id: String,
    /// Name of the one-time schedule (EventBridge Scheduler) or local timer.
    pub schedule_name: String,
    pub kind: NotificationKind,
    pub recipient: Recipient,
    pub channel: ContactChannel,
    pub offset_minutes: u32,
    /// True when quiet hours moved it earlier than its offset.
    pub moved_for_quiet_hours: bool,
}

/// Why a session's pending reminders were withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    Cancelled,
    Rescheduled,
    /// The session started (or ended) before they fired.
    SessionStarted,
}

/// Pending reminders of a session were deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemindersCancelled {
    pub schema_version: u32,
    pub event_id: String,
    pub session_id: String,
    pub reason: CancelReason,
    pub schedule_names: Vec<String>,
}

/// A session ended and no recording of it arrived within the configured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordingMissing {
    pub schema_version: u32,
    pub event_id: String,
    pub session_id: String,
    /// Minutes waited after the session ended (0 when a failed capture said so first).
    pub waited_minutes: u32,
    /// Why no recording will come, when a meeting capture said so; absent when nothing
    /// arrived within the grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<crate::capture::CaptureFailure>,
}

impl RecordingMissing {
    /// One id per session: whichever reports it first, it is reported once.
    pub fn new(session_id: &str, waited_minutes: u32) -> Self {
        Self {
            schema_version: schema_version(),
            event_id: digest_hex(&[Self::DETAIL_TYPE.as_bytes(), session_id.as_bytes()], 16),
            session_id: session_id.to_owned(),
            waited_minutes,
            reason: None,
        }
    }

    /// The capture of the session's meeting failed or ended empty.
    pub fn capture(session_id: &str, reason: crate::capture::CaptureFailure) -> Self {
        Self {
            reason: Some(reason),
            ..Self::new(session_id, 0)
        }
    }
}

/// Why a notification was not sent, though nothing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    SessionCancelled,
    /// The session moved since the reminder was planned.
    SessionMoved,
    SessionStarted,
    SessionEnded,
    /// The session is unknown (never booked, or forgotten).
    UnknownSession,
    /// Already sent for this intent by an earlier delivery.
    AlreadySent,
    /// The recipient has no contact of the request's channel any more.
    ContactChanged,
    /// The number opted out of SMS (STOP, or the provider said so); no provider call.
    OptedOut,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionCancelled => "session_cancelled",
            Self::SessionMoved => "session_moved",
            Self::SessionStarted => "session_started",
            Self::SessionEnded => "session_ended",
            Self::UnknownSession => "unknown_session",
            Self::AlreadySent => "already_sent",
            Self::ContactChanged => "contact_changed",
            Self::OptedOut => "opted_out",
        }
    }
}

/// The ids and routing of a notification, shared by its outcome events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationRef {
    pub session_id: String,
    pub intent_id: String,
    pub kind: NotificationKind,
    pub recipient: Recipient,
    pub channel: ContactChannel,
}

impl From<&NotificationRequest> for NotificationRef {
    fn from(request: &NotificationRequest) -> Self {
        Self {
            session_id: request.session_id.clone(),
            intent_id: request.intent_id.clone(),
            kind: request.kind,
            recipient: request.recipient,
            channel: request.channel,
        }
    }
}

/// A notification was accepted by its provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationSent {
    pub schema_version: u32,
    pub event_id: String,
    #[serde(flatten)]
    pub notification: NotificationRef,
    /// `sns`, `twilio`, `ses` or `outbox`.
    pub provider: String,
}

/// A notification was deliberately not sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationSkipped {
    pub schema_version: u32,
    pub event_id: String,
    #[serde(flatten)]
    pub notification: NotificationRef,
    pub reason: SkipReason,
}

/// A notification could not be sent and will not be retried (or its outcome is unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationFailed {
    pub schema_version: u32,
    pub event_id: String,
    #[serde(flatten)]
    pub notification: NotificationRef,
    /// Machine-readable reason, e.g. `invalid_address`, `provider_rejected`, `outcome_unknown`.
    pub reason: String,
    pub error_class: String,
}

/// Event ids of notification outcomes: one per intent and outcome type, so redeliveries
/// republish the same id.
pub fn outcome_event_id(detail_type: &str, intent_id: &str) -> String {
    digest_hex(&[detail_type.as_bytes(), intent_id.as_bytes()], 16)
}

macro_rules! telepipe_event {
    ($type:ty, $detail_type:literal, $schema:literal, $($session:tt)+) => {
        impl PipelineEvent for $type {
            const DETAIL_TYPE: &'static str = $detail_type;
            const SCHEMA_NAME: &'static str = $schema;
            fn event_id(&self) -> &str {
                &self.event_id
            }
            fn session_id(&self) -> Option<&str> {
                Some(&self.$($session)+)
            }
        }
    };
}

telepipe_event!(
    ReminderScheduled,
    "Reminder Scheduled",
    "reminder-scheduled",
    session_id
);
telepipe_event!(
    RemindersCancelled,
    "Reminders Cancelled",
    "reminders-cancelled",
    session_id
);
telepipe_event!(
    RecordingMissing,
    "Recording Missing",
    "recording-missing",
    session_id
);
telepipe_event!(
    NotificationSent,
    "Notification Sent",
    "notification-sent",
    notification.session_id
);
telepipe_event!(
    NotificationSkipped,
    "Notification Skipped",
    "notification-skipped",
    notification.session_id
);
telepipe_event!(
    NotificationFailed,
    "Notification Failed",
    "notification-failed",
    notification.session_id
);

/// The `detail-type`s of the notification outcome events.
pub const NOTIFICATION_DETAIL_TYPES: [&str; 3] = [
    NotificationSent::DETAIL_TYPE,
    NotificationSkipped::DETAIL_TYPE,
    NotificationFailed::DETAIL_TYPE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_ids_differ_by_every_part_of_the_intent() {
        let base = NotificationRequest::new(
            "s-1",
            NotificationKind::Reminder,
            Recipient::Patient,
            ContactChannel::Sms,
            Some(60),
            Some("2026-03-09T14:00:00Z".into()),
            0,
        );
        let variants = [
            NotificationRequest::new(
                "s-2",
                NotificationKind::Reminder,
                Recipient::Patient,
                ContactChannel::Sms,
                Some(60),
                Some("2026-03-09T14:00:00Z".into()),
                0,
            ),
            NotificationRequest::new(
                "s-1",
                NotificationKind::Confirmation,
                Recipient::Patient,
                ContactChannel::Sms,
                Some(60),
                Some("2026-03-09T14:00:00Z".into()),
                0,
            ),
            NotificationRequest::new(
                "s-1",
                NotificationKind::Reminder,
                Recipient::Clinician,
                ContactChannel::Sms,
                Some(60),
                Some("2026-03-09T14:00:00Z".into()),
                0,
            ),
            NotificationRequest::new(
                "s-1",
                NotificationKind::Reminder,
                Recipient::Patient,
                ContactChannel::Email,
                Some(60),
                Some("2026-03-09T14:00:00Z".into()),
                0,
            ),
            NotificationRequest::new(
                "s-1",
                NotificationKind::Reminder,
                Recipient::Patient,
                ContactChannel::Sms,
                Some(1440),
                Some("2026-03-09T14:00:00Z".into()),
                0,
            ),
            NotificationRequest::new(
                "s-1",
                NotificationKind::Reminder,
                Recipient::Patient,
                ContactChannel::Sms,
                Some(60),
                Some("2026-03-10T14:00:00Z".into()),
                0,
            ),
            NotificationRequest::new(
                "s-1",
                NotificationKind::Reminder,
                Recipient::Patient,
                ContactChannel::Sms,
                Some(60),
                Some("2026-03-09T14:00:00Z".into()),
                1,
            ),
        ];
        for variant in &variants {
            assert_ne!(variant.intent_id, base.intent_id);
        }
        let again = NotificationRequest::new(
            "s-1",
            NotificationKind::Reminder,
            Recipient::Patient,
            ContactChannel::Sms,
            Some(60),
            Some("2026-03-09T14:00:00Z".into()),
            0,
        );
        assert_eq!(again, base);
    }
}

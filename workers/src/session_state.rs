//! A session's current state and how each input changes it.
//!
//! Application events are applied in version order however they arrive: each group of
//! fields remembers the version that last set it (`booking_version`, `timing_version`),
//! so a late, lower-versioned event cannot overwrite newer facts. Cancellation is final
//! (rebooking makes a new session), so a late `Session Scheduled` after `Session
//! Cancelled` cannot resurrect reminders. Chime facts (meeting started/ended, clinician
//! present) only ever become true, so their order does not matter either.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use telepipe_events::notify::{NotificationKind, Recipient};
use telepipe_events::sessions::{ContactChannel, Participant};

/// Who is in the session and how to reach them (from `Session Scheduled` only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub patient: Participant,
    /// Absent for bookings from tools that name no clinician (`Appointment Booked`):
    /// reminders go to the patient only, and no waiting-room alert can be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinician: Option<Participant>,
    pub locale: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_url: Option<String>,
}

impl Booking {
    pub fn participant(&self, recipient: Recipient) -> Option<&Participant> {
        match recipient {
            Recipient::Patient => Some(&self.patient),
            Recipient::Clinician => self.clinician.as_ref(),
        }
    }
}

/// When the session is (from the newest `Session Scheduled`/`Session Rescheduled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    pub start: Timestamp,
    pub duration_minutes: u32,
    /// The patient's IANA zone, validated when set.
    pub time_zone: String,
}

/// A one-time schedule the worker created and has not seen fire or withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledReminder {
    pub intent_id: String,
    pub kind: NotificationKind,
    pub recipient: Recipient,
    pub channel: ContactChannel,
    pub offset_minutes: u32,
    pub fire_at: Timestamp,
    pub moved_for_quiet_hours: bool,
}

/// Everything the worker knows about one session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<Booking>,
    #[serde(default)]
    pub booking_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    #[serde(default)]
    pub timing_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_version: Option<u64>,
    /// The clinician admitted the patient (`Session Started`).
    #[serde(default)]
    pub admitted: bool,
    /// The Chime meeting started (someone joined it).
    #[serde(default)]
    pub meeting_started: bool,
    #[serde(default)]
    pub clinician_present: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    #[serde(default)]
    pub waiting_alerts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_waiting_alert: Option<Timestamp>,
    #[serde(default)]
    pub recording_arrived: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_check: Option<String>,
    #[serde(default)]
    pub recording_missing_reported: bool,
    /// Pending one-time schedules by name.
    #[serde(default)]
    pub schedules: BTreeMap<String, ScheduledReminder>,
    /// Keyed hash of the patient's SMS number (`crate::replies::PhoneKey`): how a text
    /// from that number finds this session, without the number ever being a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_phone_key: Option<String>,
    /// The cancellation notice was enqueued (it goes out once per session).
    #[serde(default)]
    pub cancellation_notified: bool,
}

impl SessionState {
    pub fn new(session_id: &str) -> Self {
        Self {
            session_id: session_id.to_owned(),
            ..Self::default()
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled_version.is_some()
    }

    pub fn has_ended(&self) -> bool {
        self.ended_at.is_some()
    }

    /// Reminders make no sense any more: cancelled, under way or over.
    pub fn reminders_are_moot(&self) -> bool {
        self.is_cancelled() || self.admitted || self.meeting_started || self.has_ended()
    }

    /// Which role a participant reference names, if the booking is known.
    pub fn role_of(&self, reference: &str) -> Option<Recipient> {
        let booking = self.booking.as_ref()?;
        if booking.patient.reference == reference {
            Some(Recipient::Patient)
        } else if booking
            .clinician
            .as_ref()
            .is_some_and(|c| c.reference == reference)
        {
            Some(Recipient::Clinician)
        } else {
            None
        }
    }
}

/// When a session's state may be deleted: `keep` after the session ended (or, before it
/// has, after its planned end); `None` while its time is not known.
pub fn expires_at(state: &SessionState, keep: jiff::SignedDuration) -> Option<jiff::Timestamp> {
    let planned_end = state.timing.as_ref().and_then(|t| {
        t.start
            .checked_add(jiff::SignedDuration::from_mins(i64::from(
                t.duration_minutes,
            )))
            .ok()
    });
    let end = match (state.ended_at, planned_end) {
        (Some(ended), Some(planned)) => Some(ended.max(planned)),
        (ended, planned) => ended.or(planned),
    }?;
    end.checked_add(keep).ok()
}

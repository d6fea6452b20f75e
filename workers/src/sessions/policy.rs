//! The reminder policy: which reminders a session should have and when each fires.
//!
//! Offsets are exact durations before the start (24 h before a 10:00 appointment the day
//! after a DST change is 09:00 or 11:00 local: the patient is told the right time either
//! way). Quiet hours are wall-clock hours in the patient's zone; an SMS reminder that
//! would fire inside them moves *earlier*, to shortly before they begin, never later,
//! since a later reminder could arrive after the patient needed it.

use super::state::{Booking, ScheduledReminder, Timing};
use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use telepipe_events::notify::{NotificationKind, NotificationRequest, Recipient};
use telepipe_events::sessions::ContactChannel;

/// How long before quiet hours begin a moved reminder fires: EventBridge Scheduler fires
/// one-time schedules within about a minute, so a reminder moved to the boundary could
/// land inside.
pub const QUIET_HOURS_MARGIN: SignedDuration = SignedDuration::from_mins(5);

/// Wall-clock hours in which no SMS is sent (may span midnight, e.g. 21:00–08:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: Time,
    pub end: Time,
}

impl QuietHours {
    pub fn contains(&self, time: Time) -> bool {
        if self.start <= self.end {
            time >= self.start && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }

    /// The instant to send instead of `fire_at` (in `tz`), if `fire_at` is quiet: the
    /// margin before the start of the quiet period containing it.
    pub fn move_earlier(&self, fire_at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = fire_at.to_zoned(tz.clone());
        if !self.contains(local.time()) {
            return None;
        }
        let mut date = local.date();
        // Past midnight in a window that began the evening before.
        if self.start > self.end && local.time() < self.end {
            date = date.yesterday().ok()?;
        }
        let quiet_start = tz
            .to_ambiguous_zoned(date.to_datetime(self.start))
            .compatible()
            .ok()?;
        quiet_start.timestamp().checked_sub(QUIET_HOURS_MARGIN).ok()
    }
}

/// Reminder settings; every field has a deployment-wide setting (see `SessionsConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderPolicy {
    /// Minutes before the start, per channel of the patient's contact.
    pub offsets: BTreeMap<ContactChannel, Vec<u32>>,
    pub quiet_hours: Option<QuietHours>,
    /// Channels quiet hours apply to (SMS by default: email does not wake anyone).
    pub quiet_channels: Vec<ContactChannel>,
    /// Send a confirmation at once when a booking is too close for an offset to fire.
    pub confirm_when_too_late: bool,
}

impl Default for ReminderPolicy {
    fn default() -> Self {
        Self {
            offsets: [
                (ContactChannel::Sms, vec![1440, 60]),
                (ContactChannel::Email, vec![1440, 60]),
            ]
            .into_iter()
            .collect(),
            quiet_hours: Some(QuietHours {
                start: Time::constant(21, 0, 0, 0),
                end: Time::constant(8, 0, 0, 0),
            }),
            quiet_channels: vec![ContactChannel::Sms],
            confirm_when_too_late: false,
        }
    }
}

/// A reminder the policy asks for, with its schedule name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedReminder {
    pub name: String,
    pub request: NotificationRequest,
    pub reminder: ScheduledReminder,
}

/// Name of the one-time schedule of an intent: deterministic, so a redelivered event
/// creates the same schedule (and Scheduler answers "exists"), within Scheduler's
/// 64-character `[0-9a-zA-Z-_.]` names.
pub fn schedule_name(intent_id: &str) -> String {
    format!("tp-r-{intent_id}")
}

/// Every reminder of the session's current timing, past ones included (the caller
/// decides what to do about those), in firing order.
pub fn plan_reminders(
    session_id: &str,
    booking: &Booking,
    timing: &Timing,
    policy: &ReminderPolicy,
) -> Result<Vec<PlannedReminder>, jiff::Error> {
    let tz = TimeZone::get(&timing.time_zone)?;
    let channel = booking.patient.channel;
    let start_text = timing.start.to_string();
    let mut planned = Vec::new();
    for &offset in policy
        .offsets
        .get(&channel)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let nominal = timing
            .start
            .checked_sub(SignedDuration::from_mins(i64::from(offset)))?;
        let moved = match policy.quiet_hours {
            Some(quiet) if policy.quiet_channels.contains(&channel) => {
                quiet.move_earlier(nominal, &tz)
            }
            _ => None,
        };
        let request = NotificationRequest::new(
            session_id,
            NotificationKind::Reminder,
            Recipient::Patient,
            channel,
            Some(offset),
            Some(start_text.clone()),
            0,
        );
        planned.push(PlannedReminder {
            name: schedule_name(&request.intent_id),
            reminder: ScheduledReminder {
                intent_id: request.intent_id.clone(),
                kind: NotificationKind::Reminder,
                recipient: Recipient::Patient,
                channel,
                offset_minutes: offset,
                fire_at: moved.unwrap_or(nominal),
                moved_for_quiet_hours: moved.is_some(),
            },
            request,
        });
    }
    planned.sort_by_key(|p| p.reminder.fire_at);
    Ok(planned)
}

/// The `at()` expression and zone of a one-time schedule firing at `fire_at`: local time
/// in the patient's zone, or UTC when that local time happens twice (the hour repeated
/// when clocks go back), since `at()` names a wall-clock time and would be ambiguous.
pub fn at_expression(fire_at: Timestamp, time_zone: &str) -> (String, String) {
    const FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
    if let Ok(tz) = TimeZone::get(time_zone) {
        let local = fire_at.to_zoned(tz.clone());
        let ambiguous = tz.to_ambiguous_zoned(local.datetime()).is_ambiguous();
        if !ambiguous {
            return (
                format!("at({})", local.strftime(FORMAT)),
                time_zone.to_owned(),
            );
        }
    }
    let utc = fire_at.to_zoned(TimeZone::UTC);
    (format!("at({})", utc.strftime(FORMAT)), "UTC".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use telepipe_events::sessions::Participant;

    fn booking(channel: ContactChannel) -> Booking {
        let participant = |reference: &str, address: &str| Participant {
            reference: reference.into(),
            channel,
            address: address.into(),
            locale: None,
        };
        Booking {
            patient: participant("p-1", "+15550100"),
            clinician: Some(participant("c-1", "+15550101")),
            locale: "en".into(),
            clinic_name: None,
            join_url: None,
        }
    }

    fn timing(start: &str, zone: &str) -> Timing {
        Timing {
            start: start.parse().unwrap(),
            duration_minutes: 30,
            time_zone: zone.into(),
        }
    }

    fn local(ts: Timestamp, zone: &str) -> String {
        ts.to_zoned(TimeZone::get(zone).unwrap())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    #[test]
    fn default_policy_reminds_a_day_and_an_hour_before() {
        let plan = plan_reminders(
            "s",
            &booking(ContactChannel::Email),
            &timing("2026-06-10T14:00:00Z", "Europe/London"),
            &ReminderPolicy::default(),
        )
        .unwrap();
        let fire: Vec<String> = plan
            .iter()
            .map(|p| p.reminder.fire_at.to_string())
            .collect();
        assert_eq!(fire, ["2026-06-09T14:00:00Z", "2026-06-10T13:00:00Z"]);
        assert!(plan.iter().all(|p| !p.reminder.moved_for_quiet_hours));
        assert_ne!(plan[0].name, plan[1].name);
        assert!(plan.iter().all(|p| p.name.len() <= 64));
    }

    #[test]
    fn dst_change_between_booking_and_reminder_keeps_exact_offsets() {
        // US clocks go forward on 2026-03-08: a 10:00 EDT appointment on the 9th is 24 h
        // after 10:00 EDT on the 8th (the change was at 02:00 that morning).
        let plan = plan_reminders(
            "s",
            &booking(ContactChannel::Sms),
            &timing("2026-03-09T10:00:00-04:00", "America/New_York"),
            &ReminderPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            local(plan[0].reminder.fire_at, "America/New_York"),
            "2026-03-08 10:00 EDT"
        );
        // Appointment on the day of the change, 10:00 EDT: 24 h before is 09:00 EST on the 7th.
        let plan = plan_reminders(
            "s",
            &booking(ContactChannel::Sms),
            &timing("2026-03-08T10:00:00-04:00", "America/New_York"),
            &ReminderPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            local(plan[0].reminder.fire_at, "America/New_York"),
            "2026-03-07 09:00 EST"
        );
        assert_eq!(
            plan[0]
                .reminder
                .fire_at
                .duration_until(timing("2026-03-08T10:00:00-04:00", "UTC").start),
            SignedDuration::from_hours(24)
        );
    }

    #[test]
    fn quiet_hours_are_the_patients_not_the_clinics() {
        // Clinic in New York books 09:00 EST for a patient in Los Angeles (06:00 PST):
        // the 1 h reminder would be 05:00 in LA, inside quiet hours → 20:55 the evening before.
        let plan = plan_reminders(
            "s",
            &booking(ContactChannel::Sms),
            &timing("2026-01-15T09:00:00-05:00", "America/Los_Angeles"),
            &ReminderPolicy::default(),
        )
        .unwrap();
        let one_hour = plan
            .iter()
            .find(|p| p.reminder.offset_minutes == 60)
            .unwrap();
        assert!(one_hour.reminder.moved_for_quiet_hours);
        assert_eq!(
            local(one_hour.reminder.fire_at, "America/Los_Angeles"),
            "2026-01-14 20:55 PST"
        );
        // The 24 h one (05:00 LA the day before) moves to 20:55 two evenings before: never later.
        let day = plan
            .iter()
            .find(|p| p.reminder.offset_minutes == 1440)
            .unwrap();
        assert_eq!(
            local(day.reminder.fire_at, "America/Los_Angeles"),
            "2026-01-13 20:55 PST"
        );
        assert!(plan.iter().all(|p| p.reminder.fire_at
            <= p.request
                .appointment_start
                .as_ref()
                .unwrap()
                .parse::<Timestamp>()
                .unwrap()));
        // For a New York patient the same appointment is 09:00 local: 08:00 reminder is fine.
        let ny = plan_reminders(
            "s",
            &booking(ContactChannel::Sms),
            &timing("2026-01-15T09:00:00-05:00", "America/New_York"),
            &ReminderPolicy::default(),
        )
        .unwrap();
        assert!(ny.iter().all(|p| !p.reminder.moved_for_quiet_hours));
    }

    #[test]
    fn quiet_hours_apply_to_sms_only_and_handle_evening_and_daytime_windows() {
        let late = timing("2026-05-05T22:30:00+02:00", "Europe/Madrid");
        let email = plan_reminders(
            "s",
            &booking(ContactChannel::Email),
            &late,
            &ReminderPolicy::default(),
        )
        .unwrap();
        assert!(email.iter().all(|p| !p.reminder.moved_for_quiet_hours));
        let sms = plan_reminders(
            "s",
            &booking(ContactChannel::Sms),
            &late,
            &ReminderPolicy::default(),
        )
        .unwrap();
        // 21:30 the same evening (quiet, before midnight) → 20:55 that evening.
        assert_eq!(
            local(sms[1].reminder.fire_at, "Europe/Madrid"),
            "2026-05-05 20:55 CEST"
        );
        let lunch = QuietHours {
            start: Time::constant(12, 0, 0, 0),
            end: Time::constant(13, 0, 0, 0),
        };
        let tz = TimeZone::get("Europe/Madrid").unwrap();
        let moved = lunch
            .move_earlier("2026-05-05T12:30:00+02:00".parse().unwrap(), &tz)
            .unwrap();
        assert_eq!(local(moved, "Europe/Madrid"), "2026-05-05 11:55 CEST");
        assert_eq!(
            lunch.move_earlier("2026-05-05T13:00:00+02:00".parse().unwrap(), &tz),
            None
        );
    }

    #[test]
    fn at_expressions_use_the_patients_zone_unless_the_hour_repeats() {
        let (expr, zone) =
            at_expression("2026-03-08T14:00:00Z".parse().unwrap(), "America/New_York");
        assert_eq!(
            (expr.as_str(), zone.as_str()),
            ("at(2026-03-08T10:00:00)", "America/New_York")
        );
        // 01:30 on 2026-11-01 happens twice in New York: say it in UTC.
        let (expr, zone) =
            at_expression("2026-11-01T05:30:00Z".parse().unwrap(), "America/New_York");
        assert_eq!(
            (expr.as_str(), zone.as_str()),
            ("at(2026-11-01T05:30:00)", "UTC")
        );
    }

    #[test]
    fn unknown_zones_are_errors() {
        assert!(plan_reminders(
            "s",
            &booking(ContactChannel::Sms),
            &timing("2026-01-15T09:00:00Z", "Mars/Olympus"),
            &ReminderPolicy::default()
        )
        .is_err());
    }
}

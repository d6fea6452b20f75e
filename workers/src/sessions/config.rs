//! The `sessions` stage's settings: the reminder policy, the session sources, and where
//! schedules and session state live on AWS.

use super::policy::{QuietHours, ReminderPolicy};
use crate::config::{list, minutes, ConfigError, Env};
use telepipe_events::sessions::ContactChannel;

/// Parses `24h`, `90m`, `2d` or plain minutes into minutes.
fn parse_minutes(text: &str) -> Option<u32> {
    let text = text.trim();
    let (number, factor) = match text.char_indices().last()? {
        (i, 'm') => (&text[..i], 1),
        (i, 'h') => (&text[..i], 60),
        (i, 'd') => (&text[..i], 1440),
        _ => (text, 1),
    };
    number.trim().parse::<u32>().ok()?.checked_mul(factor)
}

fn offsets(env: &Env, name: &'static str) -> Result<Vec<u32>, ConfigError> {
    let text = env.or(name, "24h,1h");
    if matches!(text.trim(), "none" | "off") {
        return Ok(Vec::new());
    }
    let mut minutes = Vec::new();
    for part in text.split(',') {
        match parse_minutes(part) {
            Some(m) if (1..=60 * 24 * 30).contains(&m) => minutes.push(m),
            _ => {
                return Err(ConfigError {
                    variable: name,
                    problem: format!(
                        "must be offsets before the start like 24h,1h or 90m (1 minute to 30 days), or none (got {text:?})"
                    ),
                })
            }
        }
    }
    minutes.sort_unstable_by(|a, b| b.cmp(a));
    minutes.dedup();
    Ok(minutes)
}

fn quiet_hours(env: &Env, name: &'static str) -> Result<Option<QuietHours>, ConfigError> {
    let text = env.or(name, "21:00-08:00");
    if matches!(text.trim(), "none" | "off") {
        return Ok(None);
    }
    let bad = || ConfigError {
        variable: name,
        problem: format!("must be HH:MM-HH:MM in the patient's zone, or off (got {text:?})"),
    };
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start: jiff::civil::Time = start.trim().parse().map_err(|_| bad())?;
    let end: jiff::civil::Time = end.trim().parse().map_err(|_| bad())?;
    if start == end {
        return Err(bad());
    }
    Ok(Some(QuietHours { start, end }))
}

fn channels(
    env: &Env,
    name: &'static str,
    default: &str,
) -> Result<Vec<ContactChannel>, ConfigError> {
    env.or(name, default)
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| match part.trim() {
            "sms" => Ok(ContactChannel::Sms),
            "email" => Ok(ContactChannel::Email),
            other => Err(ConfigError {
                variable: name,
                problem: format!("must list channels sms and/or email (got {other:?})"),
            }),
        })
        .collect()
}

/// The `sessions` stage's settings: the reminder policy and the session-event source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsConfig {
    /// `TELEPIPE_SESSIONS_SOURCE` (default `telehealth.sessions`): `source` of the platform's events.
    pub sessions_source: String,
    /// `TELEPIPE_REMINDER_OFFSETS_SMS`, `TELEPIPE_REMINDER_OFFSETS_EMAIL` (default `24h,1h`,
    /// or `none`); `TELEPIPE_QUIET_HOURS` (default `21:00-08:00`, or `off`);
    /// `TELEPIPE_QUIET_HOURS_CHANNELS` (default `sms`); `TELEPIPE_CONFIRM_WHEN_TOO_LATE`
    /// (default false).
    pub policy: ReminderPolicy,
    /// `TELEPIPE_WAITING_ALERT_WINDOW_MINUTES` (default 10): repeated joins within it alert once.
    pub waiting_alert_window: jiff::SignedDuration,
    /// `TELEPIPE_RECORDING_GRACE_MINUTES` (default 120): after a session ends, how long
    /// its recording may take before `Recording Missing` is published.
    pub recording_grace: jiff::SignedDuration,
    /// `TELEPIPE_JOIN_URL_HOSTS` (default empty = any host): hosts a booking's `join_url`
    /// may point to (exact names, comma-separated); it must be https in any case.
    pub join_url_hosts: Vec<String>,
    /// The secret that keys patients' numbers (`PhoneKeyConfig`; set by the caller after
    /// reading it once). Without it, replies cannot find a session.
    pub phone_key: Option<crate::replies::PhoneKey>,
    /// `TELEPIPE_BOOKING_CONFIRMATION` (default false): confirm each new booking to the
    /// patient at once.
    pub booking_confirmation: bool,
    /// `TELEPIPE_CLINIC_TIME_ZONE` (optional IANA zone): the zone of bookings that give a
    /// local date and time (`Appointment Booked`).
    pub clinic_time_zone: Option<String>,
}

impl SessionsConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let policy = ReminderPolicy {
            offsets: [
                (
                    ContactChannel::Sms,
                    offsets(env, "TELEPIPE_REMINDER_OFFSETS_SMS")?,
                ),
                (
                    ContactChannel::Email,
                    offsets(env, "TELEPIPE_REMINDER_OFFSETS_EMAIL")?,
                ),
            ]
            .into_iter()
            .collect(),
            quiet_hours: quiet_hours(env, "TELEPIPE_QUIET_HOURS")?,
            quiet_channels: channels(env, "TELEPIPE_QUIET_HOURS_CHANNELS", "sms")?,
            confirm_when_too_late: env.flag("TELEPIPE_CONFIRM_WHEN_TOO_LATE", false)?,
        };
        Ok(Self {
            sessions_source: env.or(
                "TELEPIPE_SESSIONS_SOURCE",
                telepipe_events::sessions::DEFAULT_SESSIONS_SOURCE,
            ),
            policy,
            waiting_alert_window: minutes(
                env,
                "TELEPIPE_WAITING_ALERT_WINDOW_MINUTES",
                10,
                24 * 60,
            )?,
            recording_grace: minutes(env, "TELEPIPE_RECORDING_GRACE_MINUTES", 120, 7 * 24 * 60)?,
            join_url_hosts: list(env, "TELEPIPE_JOIN_URL_HOSTS")
                .into_iter()
                .map(|host| host.to_ascii_lowercase())
                .collect(),
            phone_key: None,
            booking_confirmation: env.flag("TELEPIPE_BOOKING_CONFIRMATION", false)?,
            clinic_time_zone: match env.optional("TELEPIPE_CLINIC_TIME_ZONE") {
                Some(zone) if jiff::tz::TimeZone::get(&zone).is_err() => {
                    return Err(ConfigError {
                        variable: "TELEPIPE_CLINIC_TIME_ZONE",
                        problem: format!(
                            "must be an IANA time zone like America/New_York (got {zone:?})"
                        ),
                    })
                }
                zone => zone,
            },
        })
    }
}

/// Where schedules live and deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// `TELEPIPE_SCHEDULE_GROUP` (required): the schedule group of this deployment.
    pub group: String,
    /// `TELEPIPE_SCHEDULER_ROLE_ARN` (required): the role Scheduler assumes to send to the queues.
    pub role_arn: String,
    /// `TELEPIPE_NOTIFICATIONS_QUEUE_ARN` (required).
    pub notifications_queue_arn: String,
    /// `TELEPIPE_SESSIONS_QUEUE_ARN` (required): recording checks come back here.
    pub sessions_queue_arn: String,
    /// `TELEPIPE_SCHEDULER_DLQ_ARN` (required): deliveries Scheduler gives up on.
    pub dead_letter_arn: String,
}

impl SchedulerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            group: env.required("TELEPIPE_SCHEDULE_GROUP")?,
            role_arn: env.required("TELEPIPE_SCHEDULER_ROLE_ARN")?,
            notifications_queue_arn: env.required("TELEPIPE_NOTIFICATIONS_QUEUE_ARN")?,
            sessions_queue_arn: env.required("TELEPIPE_SESSIONS_QUEUE_ARN")?,
            dead_letter_arn: env.required("TELEPIPE_SCHEDULER_DLQ_ARN")?,
        })
    }
}

/// Sessions worker settings only the Lambda needs (the local runtime has its own stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsAwsConfig {
    /// `TELEPIPE_SESSIONS_TABLE` (required): session state and notification intents.
    pub table: String,
    /// `TELEPIPE_NOTIFICATIONS_QUEUE_URL` (required): alerts and confirmations due now.
    pub notifications_queue_url: String,
    /// `TELEPIPE_SESSION_TTL_DAYS` (default 30; 0 = until forget): days a session's state
    /// is kept after the session ends (DynamoDB TTL).
    pub state_ttl_days: u32,
}

impl SessionsAwsConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table: env.required("TELEPIPE_SESSIONS_TABLE")?,
            notifications_queue_url: env.required("TELEPIPE_NOTIFICATIONS_QUEUE_URL")?,
            state_ttl_days: env.parsed("TELEPIPE_SESSION_TTL_DAYS", 30u32, "whole days")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminder_policy_settings_parse_and_name_the_variable() {
        let defaults = SessionsConfig::from_env(&Env::from_pairs(&[])).unwrap();
        assert_eq!(defaults.policy, ReminderPolicy::default());
        assert_eq!(defaults.sessions_source, "telehealth.sessions");
        let custom = SessionsConfig::from_env(&Env::from_pairs(&[
            ("TELEPIPE_REMINDER_OFFSETS_SMS", "1h, 2d,90m"),
            ("TELEPIPE_REMINDER_OFFSETS_EMAIL", "none"),
            ("TELEPIPE_QUIET_HOURS", "22:30-07:15"),
            ("TELEPIPE_CONFIRM_WHEN_TOO_LATE", "yes"),
        ]))
        .unwrap();
        assert_eq!(
            custom.policy.offsets[&ContactChannel::Sms],
            vec![2880, 90, 60]
        );
        assert!(custom.policy.offsets[&ContactChannel::Email].is_empty());
        assert_eq!(
            custom.policy.quiet_hours.unwrap().start,
            jiff::civil::time(22, 30, 0, 0)
        );
        assert!(custom.policy.confirm_when_too_late);
        for (name, value) in [
            ("TELEPIPE_REMINDER_OFFSETS_SMS", "soon"),
            ("TELEPIPE_QUIET_HOURS", "21-8"),
            ("TELEPIPE_QUIET_HOURS_CHANNELS", "fax"),
            ("TELEPIPE_RECORDING_GRACE_MINUTES", "-5"),
        ] {
            let err = SessionsConfig::from_env(&Env::from_pairs(&[(name, value)])).unwrap_err();
            assert_eq!(err.variable, name);
        }
    }
}

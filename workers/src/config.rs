//! Worker configuration from documented environment variables, read and validated once
//! at start-up. Every error names the variable at fault and what it should hold.
//!
//! AWS endpoints, region and credentials are not here: they follow the SDK's standard
//! settings (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, `AWS_REGION`, ...).

use crate::ports::SpeakerMode;
use crate::retry::RetryPolicy;
use crate::sessions::policy::{QuietHours, ReminderPolicy};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use telepipe_events::sessions::ContactChannel;

/// A variable that is missing or does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration: {} {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Looks a variable up by name.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// A source of variables: the process environment, or a map in tests.
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

impl<'a> Env<'a> {
    pub fn process() -> Self {
        Self {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }

    /// The process environment, falling back to `defaults` for unset variables (how the
    /// local runtime supplies its own queue names while honouring every documented variable).
    pub fn process_with_defaults(defaults: &'a [(&'a str, &'a str)]) -> Self {
        Self {
            lookup: Box::new(move |name| {
                std::env::var(name)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .or_else(|| {
                        defaults
                            .iter()
                            .find(|(k, _)| *k == name)
                            .map(|(_, v)| (*v).to_owned())
                    })
            }),
        }
    }

    pub fn from_pairs(pairs: &'a [(&'a str, &'a str)]) -> Self {
        Self {
            lookup: Box::new(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }),
        }
    }

    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.raw(name).ok_or(ConfigError {
            variable: name,
            problem: "is not set (required)".into(),
        })
    }

    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.raw(name)
    }

    pub fn or(&self, name: &'static str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn parsed<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(text) => text.trim().parse().map_err(|_| ConfigError {
                variable: name,
                problem: format!("must be {expected} (got {text:?})"),
            }),
        }
    }

    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self
            .raw(name)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError {
                variable: name,
                problem: format!("must be true or false (got {other:?})"),
            }),
        }
    }
}

/// Reads a key-prefix variable: the one place prefixes are parsed, for every worker and
/// for the operator tools (`forget`, `reprocess`, `status`), so all of them find the same
/// keys. A prefix always ends with `/` (or is empty).
pub fn prefix(env: &Env, name: &'static str, default: &str) -> Result<String, ConfigError> {
    let value = env.or(name, default);
    if value.starts_with('/') || value.contains("//") {
        return Err(ConfigError {
            variable: name,
            problem: format!("must be a key prefix like {default:?}"),
        });
    }
    Ok(if value.is_empty() || value.ends_with('/') {
        value
    } else {
        format!("{value}/")
    })
}

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// `TELEPIPE_EVENT_BUS` (default `default`): name or ARN of the EventBridge bus.
    pub bus_name: String,
    /// `TELEPIPE_EVENT_SOURCE` (default `telepipe`).
    pub source: String,
}

impl EventsConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            bus_name: env.or("TELEPIPE_EVENT_BUS", "default"),
            source: env.or(
                "TELEPIPE_EVENT_SOURCE",
                telepipe_events::pipeline::DEFAULT_SOURCE,
            ),
        })
    }
}

/// How a consumer treats failures of the messages it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// `TELEPIPE_QUEUE_URL` (required): the queue this worker consumes, for visibility backoff.
    pub queue_url: String,
    /// `TELEPIPE_DLQ_URL` (required): the source queue's dead-letter queue, where permanent
    /// failures are sent at once with their reason.
    pub dlq_url: String,
    /// `TELEPIPE_MAX_RECEIVES` (default 5): after this many receives a retryable failure is
    /// dead-lettered by the worker with reason `retries_exhausted`. Keep it below the
    /// queue's redrive `maxReceiveCount`, which stays as the safety net.
    pub max_receives: u32,
    /// `TELEPIPE_RETRY_BASE_SECONDS` (default 30) and `TELEPIPE_RETRY_MAX_SECONDS` (default 900):
    /// visibility-timeout backoff for retryable failures, doubling per receive, with jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl ConsumerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let max_receives = env.parsed(
            "TELEPIPE_MAX_RECEIVES",
            5u32,
            "a whole number from 1 to 1000",
        )?;
        if !(1..=1000).contains(&max_receives) {
            return Err(ConfigError {
                variable: "TELEPIPE_MAX_RECEIVES",
                problem: "must be from 1 to 1000".into(),
            });
        }
        let base = env.parsed("TELEPIPE_RETRY_BASE_SECONDS", 30u64, "whole seconds")?;
        let max = env.parsed(
            "TELEPIPE_RETRY_MAX_SECONDS",
            900u64,
            "whole seconds up to 43200",
        )?;
        if max > 43_200 || base > max {
            return Err(ConfigError {
                variable: "TELEPIPE_RETRY_MAX_SECONDS",
                problem: "must be at least TELEPIPE_RETRY_BASE_SECONDS and at most 43200 (SQS visibility limit)".into(),
            });
        }
        Ok(Self {
            queue_url: env.required("TELEPIPE_QUEUE_URL")?,
            dlq_url: env.required("TELEPIPE_DLQ_URL")?,
            max_receives,
            retry_base: Duration::from_secs(base),
            retry_max: Duration::from_secs(max),
        })
    }
}

/// The `intake` stage's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeConfig {
    /// `TELEPIPE_RECORDINGS_PREFIX` (default `recordings/`).
    pub recordings_prefix: String,
    /// `TELEPIPE_MAX_RECORDING_BYTES` (default 2 GiB, Transcribe's cap).
    pub max_recording_bytes: u64,
    /// `TELEPIPE_TRANSCRIPTS_BUCKET` (required).
    pub transcripts_bucket: String,
    /// `TELEPIPE_TRANSCRIPTS_PREFIX` (default `transcripts/`).
    pub transcripts_prefix: String,
    /// `TELEPIPE_TRANSCRIPTS_KMS_KEY_ID` (optional): KMS key for transcript output.
    pub transcripts_kms_key_id: Option<String>,
    /// `TELEPIPE_CHANNEL_IDENTIFICATION` (default false) or `TELEPIPE_MAX_SPEAKERS` (default 2, 2–30).
    pub speakers: SpeakerMode,
    /// `TELEPIPE_SPECIALTY` (default `PRIMARYCARE`, the only one Transcribe Medical offers).
    pub specialty: String,
    /// `TELEPIPE_CONVERSATION_TYPE` (default `CONVERSATION`; or `DICTATION`).
    pub conversation_type: String,
    /// `TELEPIPE_CAPTURE_PREFIX` (default `captures/`): Chime capture artifacts, which
    /// intake acknowledges and ignores if a notification brings them.
    pub capture_prefix: String,
    /// `TELEPIPE_VOCABULARY_NAME` (optional): a Transcribe Medical custom vocabulary.
    pub vocabulary_name: Option<String>,
    /// `TELEPIPE_IDENTIFY_PHI` (default false): `ContentIdentificationType=PHI`.
    pub identify_phi: bool,
}

pub const DEFAULT_MAX_RECORDING_BYTES: u64 = 2 * 1024 * 1024 * 1024;

impl IntakeConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let channels = env.flag("TELEPIPE_CHANNEL_IDENTIFICATION", false)?;
        let max_speakers =
            env.parsed("TELEPIPE_MAX_SPEAKERS", 2u8, "a whole number from 2 to 30")?;
        if !(2..=30).contains(&max_speakers) {
            return Err(ConfigError {
                variable: "TELEPIPE_MAX_SPEAKERS",
                problem: "must be from 2 to 30".into(),
            });
        }
        let conversation_type = env
            .or("TELEPIPE_CONVERSATION_TYPE", "CONVERSATION")
            .to_ascii_uppercase();
        if !matches!(conversation_type.as_str(), "CONVERSATION" | "DICTATION") {
            return Err(ConfigError {
                variable: "TELEPIPE_CONVERSATION_TYPE",
                problem: "must be CONVERSATION or DICTATION".into(),
            });
        }
        let max_recording_bytes = env.parsed(
            "TELEPIPE_MAX_RECORDING_BYTES",
            DEFAULT_MAX_RECORDING_BYTES,
            "a size in bytes",
        )?;
        Ok(Self {
            recordings_prefix: prefix(env, "TELEPIPE_RECORDINGS_PREFIX", "recordings/")?,
            max_recording_bytes,
            transcripts_bucket: env.required("TELEPIPE_TRANSCRIPTS_BUCKET")?,
            transcripts_prefix: prefix(env, "TELEPIPE_TRANSCRIPTS_PREFIX", "transcripts/")?,
            transcripts_kms_key_id: env.optional("TELEPIPE_TRANSCRIPTS_KMS_KEY_ID"),
            speakers: if channels {
                SpeakerMode::ChannelIdentification
            } else {
                SpeakerMode::SpeakerLabels { max_speakers }
            },
            specialty: env.or("TELEPIPE_SPECIALTY", "PRIMARYCARE"),
            conversation_type,
            capture_prefix: prefix(env, "TELEPIPE_CAPTURE_PREFIX", DEFAULT_CAPTURE_PREFIX)?,
            vocabulary_name: vocabulary_name(env, "TELEPIPE_VOCABULARY_NAME")?,
            identify_phi: env.flag("TELEPIPE_IDENTIFY_PHI", false)?,
        })
    }
}

/// Where platforms point their Chime media capture sinks, below the recordings bucket.
pub const DEFAULT_CAPTURE_PREFIX: &str = "captures/";

/// Transcribe's vocabulary names: 1–200 of letters, digits, `.`, `_`, `-`.
fn vocabulary_name(env: &Env, variable: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(name) = env.optional(variable) else {
        return Ok(None);
    };
    let name = name.trim().to_owned();
    if name.len() > 200
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ConfigError {
            variable,
            problem: "must be 1-200 of letters, digits, '.', '_', '-'".into(),
        });
    }
    Ok(Some(name))
}

/// The `sms-inbound` webhook's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundConfig {
    /// `TELEPIPE_TWILIO_WEBHOOK_URL` (optional): the URL exactly as configured in Twilio
    /// (signatures are computed over it), for a custom domain; unset, the function URL
    /// the request came to (its domain as Lambda reports it, never a request header).
    pub webhook_url: Option<String>,
    /// `TELEPIPE_TWILIO_SECRET_ARN`, else `TELEPIPE_TWILIO_ACCOUNT_SID` +
    /// `TELEPIPE_TWILIO_AUTH_TOKEN`: whose auth token signs the webhooks.
    pub credentials: TwilioCredentials,
    /// `TELEPIPE_REPLIES_QUEUE_URL` (required): where valid messages go.
    pub replies_queue_url: String,
}

impl InboundConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let webhook_url = env.optional("TELEPIPE_TWILIO_WEBHOOK_URL");
        if webhook_url
            .as_ref()
            .is_some_and(|url| !url.starts_with("https://"))
        {
            return Err(ConfigError {
                variable: "TELEPIPE_TWILIO_WEBHOOK_URL",
                problem: "must be the https URL configured in Twilio".into(),
            });
        }
        Ok(Self {
            webhook_url,
            credentials: match env.optional("TELEPIPE_TWILIO_SECRET_ARN") {
                Some(secret_id) => TwilioCredentials::SecretsManager { secret_id },
                None => TwilioCredentials::Env {
                    account_sid: env.or("TELEPIPE_TWILIO_ACCOUNT_SID", ""),
                    auth_token: Secret(env.required("TELEPIPE_TWILIO_AUTH_TOKEN")?),
                },
            },
            replies_queue_url: env.required("TELEPIPE_REPLIES_QUEUE_URL")?,
        })
    }
}

/// Where the phone key comes from on AWS: read once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneKeyConfig {
    /// `TELEPIPE_PHONE_KEY_SECRET_ARN`: a Secrets Manager secret (the template makes one).
    Secret(String),
    /// `TELEPIPE_PHONE_KEY`: the key itself (tests, emulators).
    Value(Secret),
    /// Neither set: replies cannot match numbers and no suppression is checked.
    None,
}

impl PhoneKeyConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(
            match (
                env.optional("TELEPIPE_PHONE_KEY_SECRET_ARN"),
                env.optional("TELEPIPE_PHONE_KEY"),
            ) {
                (Some(arn), _) => Self::Secret(arn),
                (None, Some(value)) => Self::Value(Secret(value)),
                (None, None) => Self::None,
            },
        )
    }
}

/// Where the audit trail goes on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// `TELEPIPE_AUDIT_BUCKET` (optional; the template always sets it): the Object Lock
    /// bucket. Unset, no audit entries are written (said once at start-up).
    pub bucket: Option<String>,
}

impl AuditConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            bucket: env.optional("TELEPIPE_AUDIT_BUCKET"),
        })
    }
}

/// The `capture` stage's settings (Chime SDK media capture → one recording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// `TELEPIPE_RECORDINGS_BUCKET` (required): holds captures and recordings.
    pub recordings_bucket: String,
    /// `TELEPIPE_RECORDINGS_PREFIX` (default `recordings/`): where the joined recording goes.
    pub recordings_prefix: String,
    /// `TELEPIPE_CAPTURE_PREFIX` (default `captures/`): capture sinks are `{prefix}{session_id}`.
    pub capture_prefix: String,
}

impl CaptureConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let config = Self {
            recordings_bucket: env.required("TELEPIPE_RECORDINGS_BUCKET")?,
            recordings_prefix: prefix(env, "TELEPIPE_RECORDINGS_PREFIX", "recordings/")?,
            capture_prefix: prefix(env, "TELEPIPE_CAPTURE_PREFIX", DEFAULT_CAPTURE_PREFIX)?,
        };
        // Overlapping prefixes would feed capture chunks to intake one by one.
        if config.capture_prefix.starts_with(&config.recordings_prefix)
            || config.recordings_prefix.starts_with(&config.capture_prefix)
        {
            return Err(ConfigError {
                variable: "TELEPIPE_CAPTURE_PREFIX",
                problem: "must not overlap TELEPIPE_RECORDINGS_PREFIX".into(),
            });
        }
        Ok(config)
    }

    /// `{capture prefix}{session}/`: the sink folder of a session's capture.
    pub fn capture_folder(&self, session: &str) -> String {
        format!("{}{session}/", self.capture_prefix)
    }

    /// `{recordings prefix}{session}/`: where the joined recording is written.
    pub fn recording_folder(&self, session: &str) -> String {
        format!("{}{session}/", self.recordings_prefix)
    }
}

/// The `clinical` stage's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClinicalConfig {
    /// `TELEPIPE_TRANSCRIPTS_PREFIX` (default `transcripts/`): where transcripts are expected.
    pub transcripts_prefix: String,
    /// `TELEPIPE_RESULTS_BUCKET` (required).
    pub results_bucket: String,
    /// `TELEPIPE_RESULTS_PREFIX` (default `clinical/`).
    pub results_prefix: String,
    /// `TELEPIPE_RESULTS_KMS_KEY_ID` (optional).
    pub results_kms_key_id: Option<String>,
    /// `TELEPIPE_NLP_CONCURRENCY` (default 4): requests in flight per transcript.
    pub nlp_concurrency: usize,
    /// `TELEPIPE_NLP_MAX_ATTEMPTS` (default 6): attempts per request on throttling/5xx.
    pub nlp_retry: RetryPolicy,
    /// `TELEPIPE_MAX_TRANSCRIPT_BYTES` (default 12 MiB): larger transcripts are refused
    /// before they are read. Transcribe's 4-hour media cap at the 2.1 MB per hour measured
    /// on dense speech (BENCHMARKS.md) is 8.4 MB; the rest is headroom.
    pub max_transcript_bytes: u64,
}

/// The default `TELEPIPE_MAX_TRANSCRIPT_BYTES`.
pub const DEFAULT_MAX_TRANSCRIPT_BYTES: u64 = 12 * 1024 * 1024;

impl ClinicalConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let nlp_concurrency = env.parsed(
            "TELEPIPE_NLP_CONCURRENCY",
            4usize,
            "a whole number from 1 to 64",
        )?;
        if !(1..=64).contains(&nlp_concurrency) {
            return Err(ConfigError {
                variable: "TELEPIPE_NLP_CONCURRENCY",
                problem: "must be from 1 to 64".into(),
            });
        }
        let attempts = env.parsed(
            "TELEPIPE_NLP_MAX_ATTEMPTS",
            6u32,
            "a whole number from 1 to 20",
        )?;
        if !(1..=20).contains(&attempts) {
            return Err(ConfigError {
                variable: "TELEPIPE_NLP_MAX_ATTEMPTS",
                problem: "must be from 1 to 20".into(),
            });
        }
        Ok(Self {
            transcripts_prefix: prefix(env, "TELEPIPE_TRANSCRIPTS_PREFIX", "transcripts/")?,
            results_bucket: env.required("TELEPIPE_RESULTS_BUCKET")?,
            results_prefix: prefix(env, "TELEPIPE_RESULTS_PREFIX", "clinical/")?,
            results_kms_key_id: env.optional("TELEPIPE_RESULTS_KMS_KEY_ID"),
            nlp_concurrency,
            nlp_retry: RetryPolicy {
                max_attempts: attempts,
                ..RetryPolicy::default()
            },
            max_transcript_bytes: env.parsed(
                "TELEPIPE_MAX_TRANSCRIPT_BYTES",
                DEFAULT_MAX_TRANSCRIPT_BYTES,
                "a size in bytes",
            )?,
        })
    }
}

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

fn minutes(
    env: &Env,
    name: &'static str,
    default: u32,
    max: u32,
) -> Result<jiff::SignedDuration, ConfigError> {
    let value = env.parsed(name, default, "whole minutes")?;
    if value > max {
        return Err(ConfigError {
            variable: name,
            problem: format!("must be at most {max} minutes"),
        });
    }
    Ok(jiff::SignedDuration::from_mins(i64::from(value)))
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

/// A comma-separated list; empty items dropped.
fn list(env: &Env, name: &'static str) -> Vec<String> {
    env.optional(name)
        .map(|text| {
            text.split(',')
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Which SMS provider the notifier uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsProvider {
    Sns,
    Twilio,
}

/// The `notifier` stage's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    /// `TELEPIPE_CLINIC_NAME` (default `your clinic`): used when a booking names none.
    pub clinic_name: String,
    /// `TELEPIPE_JOIN_URL` (optional): join link when a booking has none; `{session_id}`
    /// is replaced by the session id.
    pub join_url: Option<String>,
    /// `TELEPIPE_CLAIM_LEASE_SECONDS` (default 300): how long a claimed, uncompleted
    /// notification is assumed still in flight. Longer than any provider call can take.
    pub claim_lease: jiff::SignedDuration,
    /// `TELEPIPE_IDEMPOTENCY_DAYS` (default 14): how long sent-notification records are kept.
    pub idempotency_window: jiff::SignedDuration,
    /// `TELEPIPE_SMS_PROVIDER` (`sns` default, or `twilio`).
    pub sms_provider: SmsProvider,
    /// The secret keying patients' numbers, for the suppression list (set by the caller).
    pub phone_key: Option<crate::replies::PhoneKey>,
    /// `TELEPIPE_NOTIFICATION_LOG_DAYS` (default 2,557, seven years): how long the log of
    /// every send, skip and failure is kept.
    pub notification_log_days: u32,
}

impl NotifierConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let lease = env.parsed("TELEPIPE_CLAIM_LEASE_SECONDS", 300u32, "whole seconds")?;
        let days = env.parsed(
            "TELEPIPE_IDEMPOTENCY_DAYS",
            14u32,
            "whole days from 1 to 365",
        )?;
        if !(1..=365).contains(&days) {
            return Err(ConfigError {
                variable: "TELEPIPE_IDEMPOTENCY_DAYS",
                problem: "must be from 1 to 365".into(),
            });
        }
        let sms_provider = match env.or("TELEPIPE_SMS_PROVIDER", "sns").as_str() {
            "sns" => SmsProvider::Sns,
            "twilio" => SmsProvider::Twilio,
            other => {
                return Err(ConfigError {
                    variable: "TELEPIPE_SMS_PROVIDER",
                    problem: format!("must be sns or twilio (got {other:?})"),
                })
            }
        };
        Ok(Self {
            clinic_name: env.or("TELEPIPE_CLINIC_NAME", "your clinic"),
            join_url: env.optional("TELEPIPE_JOIN_URL"),
            claim_lease: jiff::SignedDuration::from_secs(i64::from(lease.max(30))),
            idempotency_window: jiff::SignedDuration::from_hours(24 * i64::from(days)),
            sms_provider,
            phone_key: None,
            notification_log_days: env.parsed(
                "TELEPIPE_NOTIFICATION_LOG_DAYS",
                2557u32,
                "whole days",
            )?,
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

/// Notifier settings only the Lambda needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierAwsConfig {
    /// `TELEPIPE_SESSIONS_TABLE` (required).
    pub table: String,
    /// `TELEPIPE_SNS_ORIGINATION_NUMBER` (optional): the registered number or sender id.
    pub sns_origination_number: Option<String>,
    /// `TELEPIPE_EMAIL_FROM` (optional): SES v2 verified sender; without it email fails.
    pub email_from: Option<String>,
    /// `TELEPIPE_SES_CONFIGURATION_SET` (optional).
    pub ses_configuration_set: Option<String>,
}

impl NotifierAwsConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table: env.required("TELEPIPE_SESSIONS_TABLE")?,
            sns_origination_number: env.optional("TELEPIPE_SNS_ORIGINATION_NUMBER"),
            email_from: env.optional("TELEPIPE_EMAIL_FROM"),
            ses_configuration_set: env.optional("TELEPIPE_SES_CONFIGURATION_SET"),
        })
    }
}

/// A credential that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where the Twilio credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioCredentials {
    Env {
        account_sid: String,
        auth_token: Secret,
    },
    SecretsManager {
        secret_id: String,
    },
}

/// Twilio settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    pub credentials: TwilioCredentials,
    /// `TELEPIPE_TWILIO_FROM` (required): sending number (E.164) or Messaging Service SID (`MG...`).
    pub from: String,
    /// `TELEPIPE_TWILIO_API_BASE` (default `https://api.twilio.com`): tests point it at a stand-in.
    pub api_base: String,
}

impl TwilioConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let credentials = match env.optional("TELEPIPE_TWILIO_SECRET_ARN") {
            Some(secret_id) => TwilioCredentials::SecretsManager { secret_id },
            None => TwilioCredentials::Env {
                account_sid: env.required("TELEPIPE_TWILIO_ACCOUNT_SID")?,
                auth_token: Secret(env.required("TELEPIPE_TWILIO_AUTH_TOKEN")?),
            },
        };
        Ok(Self {
            credentials,
            from: env.required("TELEPIPE_TWILIO_FROM")?,
            api_base: env
                .or("TELEPIPE_TWILIO_API_BASE", "https://api.twilio.com")
                .trim_end_matches('/')
                .to_owned(),
        })
        .and_then(|config: Self| {
            // The credentials travel in every request: plain http only to this machine.
            let base = config.api_base.as_str();
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|host| {
                    base.strip_prefix(host).is_some_and(|rest| {
                        rest.is_empty() || rest.starts_with(':') || rest.starts_with('/')
                    })
                });
            if base.starts_with("https://") || loopback {
                Ok(config)
            } else {
                Err(ConfigError {
                    variable: "TELEPIPE_TWILIO_API_BASE",
                    problem: "must be an https URL (plain http only on loopback, for tests)".into(),
                })
            }
        })
    }
}

/// Where the status store is on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// `TELEPIPE_STATUS_TABLE` (required): the DynamoDB table name or ARN.
    pub table: String,
    /// `TELEPIPE_STATUS_TTL_DAYS` (default 90; 0 = keep forever): `expires_at` on every item.
    pub ttl_days: u32,
}

impl StatusConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table: env.required("TELEPIPE_STATUS_TABLE")?,
            ttl_days: env.parsed("TELEPIPE_STATUS_TTL_DAYS", 90u32, "whole days")?,
        })
    }
}

/// The sweeper's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweeperConfig {
    /// `TELEPIPE_DEADLINE_{RECEIVED,TRANSCRIBING,TRANSCRIBED,EXTRACTING}_MINUTES` and
    /// `TELEPIPE_TRANSCRIBE_CHECK_MINUTES`.
    pub deadlines: crate::status::Deadlines,
    /// `TELEPIPE_TRANSCRIBE_MAX_ATTEMPTS` (default 3, 1–10): transcription attempts per
    /// recording, the first included.
    pub max_attempts: u32,
    /// `TELEPIPE_TRANSCRIPTS_BUCKET` (required): where retried jobs write, and where a
    /// completed job's transcript is re-announced from.
    pub transcripts_bucket: String,
    /// `TELEPIPE_TRANSCRIPTS_PREFIX` (default `transcripts/`).
    pub transcripts_prefix: String,
    /// `TELEPIPE_TRANSCRIPTS_KMS_KEY_ID` (optional): KMS key for retried jobs' output.
    pub transcripts_kms_key_id: Option<String>,
}

impl SweeperConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let minutes = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            let value = env.parsed(name, default, "whole minutes from 1 to 10080")?;
            if !(1..=10_080).contains(&value) {
                return Err(ConfigError {
                    variable: name,
                    problem: "must be from 1 to 10080 (a week)".into(),
                });
            }
            Ok(value)
        };
        let defaults = crate::status::Deadlines::default();
        let deadlines = crate::status::Deadlines {
            received_minutes: minutes(
                "TELEPIPE_DEADLINE_RECEIVED_MINUTES",
                defaults.received_minutes,
            )?,
            transcribe_check_minutes: minutes(
                "TELEPIPE_TRANSCRIBE_CHECK_MINUTES",
                defaults.transcribe_check_minutes,
            )?,
            transcribing_minutes: minutes(
                "TELEPIPE_DEADLINE_TRANSCRIBING_MINUTES",
                defaults.transcribing_minutes,
            )?,
            transcribed_minutes: minutes(
                "TELEPIPE_DEADLINE_TRANSCRIBED_MINUTES",
                defaults.transcribed_minutes,
            )?,
            extracting_minutes: minutes(
                "TELEPIPE_DEADLINE_EXTRACTING_MINUTES",
                defaults.extracting_minutes,
            )?,
        };
        let max_attempts = env.parsed(
            "TELEPIPE_TRANSCRIBE_MAX_ATTEMPTS",
            3u32,
            "a whole number from 1 to 10",
        )?;
        if !(1..=10).contains(&max_attempts) {
            return Err(ConfigError {
                variable: "TELEPIPE_TRANSCRIBE_MAX_ATTEMPTS",
                problem: "must be from 1 to 10".into(),
            });
        }
        let transcripts_prefix = prefix(env, "TELEPIPE_TRANSCRIPTS_PREFIX", "transcripts/")?;
        Ok(Self {
            deadlines,
            max_attempts,
            transcripts_bucket: env.required("TELEPIPE_TRANSCRIPTS_BUCKET")?,
            transcripts_prefix,
            transcripts_kms_key_id: env.optional("TELEPIPE_TRANSCRIPTS_KMS_KEY_ID"),
        })
    }
}

/// Where the sweeper re-feeds `clinical`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefeedConfig {
    /// `TELEPIPE_CLINICAL_QUEUE_URL` (required): the clinical queue, for re-sending lost
    /// transcript notifications.
    pub clinical_queue_url: String,
}

impl RefeedConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            clinical_queue_url: env.required("TELEPIPE_CLINICAL_QUEUE_URL")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_required_variable_is_named() {
        let err = IntakeConfig::from_env(&Env::from_pairs(&[])).unwrap_err();
        assert_eq!(err.variable, "TELEPIPE_TRANSCRIPTS_BUCKET");
        assert!(err
            .to_string()
            .contains("TELEPIPE_TRANSCRIPTS_BUCKET is not set"));
    }

    #[test]
    fn invalid_values_are_named_with_what_was_given() {
        let pairs = [
            ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
            ("TELEPIPE_MAX_SPEAKERS", "many"),
        ];
        let err = IntakeConfig::from_env(&Env::from_pairs(&pairs)).unwrap_err();
        assert_eq!(err.variable, "TELEPIPE_MAX_SPEAKERS");
        assert!(err.problem.contains("\"many\""));
        let pairs = [
            ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
            ("TELEPIPE_MAX_SPEAKERS", "31"),
        ];
        assert_eq!(
            IntakeConfig::from_env(&Env::from_pairs(&pairs))
                .unwrap_err()
                .variable,
            "TELEPIPE_MAX_SPEAKERS"
        );
    }

    #[test]
    fn defaults_and_prefix_normalisation() {
        let pairs = [
            ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
            ("TELEPIPE_RECORDINGS_PREFIX", "calls"),
        ];
        let cfg = IntakeConfig::from_env(&Env::from_pairs(&pairs)).unwrap();
        assert_eq!(cfg.recordings_prefix, "calls/");
        assert_eq!(cfg.transcripts_prefix, "transcripts/");
        assert_eq!(cfg.max_recording_bytes, DEFAULT_MAX_RECORDING_BYTES);
        assert_eq!(cfg.speakers, SpeakerMode::SpeakerLabels { max_speakers: 2 });
        let pairs = [
            ("TELEPIPE_TRANSCRIPTS_BUCKET", "t"),
            ("TELEPIPE_CHANNEL_IDENTIFICATION", "true"),
        ];
        let cfg = IntakeConfig::from_env(&Env::from_pairs(&pairs)).unwrap();
        assert_eq!(cfg.speakers, SpeakerMode::ChannelIdentification);
    }

    #[test]
    fn consumer_needs_a_dlq_and_sane_backoff() {
        let variable = |pairs: &[(&str, &str)]| {
            ConsumerConfig::from_env(&Env::from_pairs(pairs))
                .unwrap_err()
                .variable
        };
        assert_eq!(variable(&[]), "TELEPIPE_QUEUE_URL");
        assert_eq!(variable(&[("TELEPIPE_QUEUE_URL", "q")]), "TELEPIPE_DLQ_URL");
        let pairs = [
            ("TELEPIPE_QUEUE_URL", "q"),
            ("TELEPIPE_DLQ_URL", "u"),
            ("TELEPIPE_RETRY_MAX_SECONDS", "50000"),
        ];
        assert_eq!(variable(&pairs), "TELEPIPE_RETRY_MAX_SECONDS");
    }

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
        let err =
            NotifierConfig::from_env(&Env::from_pairs(&[("TELEPIPE_SMS_PROVIDER", "pigeon")]))
                .unwrap_err();
        assert_eq!(err.variable, "TELEPIPE_SMS_PROVIDER");
    }
}

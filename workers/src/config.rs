//! Worker configuration from documented environment variables, read and validated once
//! at start-up. Every error names the variable at fault and what it should hold.
//!
//! AWS endpoints, region and credentials are not here: they follow the SDK's standard
//! settings (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, `AWS_REGION`, ...).

use crate::ports::SpeakerMode;
use crate::retry::RetryPolicy;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

fn prefix(env: &Env, name: &'static str, default: &str) -> Result<String, ConfigError> {
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
        })
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
    /// `TELEPIPE_MAX_TRANSCRIPT_BYTES` (default 64 MiB): larger transcripts are refused.
    pub max_transcript_bytes: u64,
}

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
                64 * 1024 * 1024,
                "a size in bytes",
            )?,
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
        let mut transcripts_prefix = env.or("TELEPIPE_TRANSCRIPTS_PREFIX", "transcripts/");
        if transcripts_prefix.starts_with('/') || transcripts_prefix.contains("//") {
            return Err(ConfigError {
                variable: "TELEPIPE_TRANSCRIPTS_PREFIX",
                problem: "must be a key prefix like \"transcripts/\"".into(),
            });
        }
        if !transcripts_prefix.is_empty() && !transcripts_prefix.ends_with('/') {
            transcripts_prefix.push('/');
        }
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
}

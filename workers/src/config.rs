//! Worker configuration from documented environment variables, read and validated once
//! at start-up. Every error names the variable at fault and what it should hold.
//!
//! AWS endpoints, region and credentials are not here: they follow the SDK's standard
//! settings (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, `AWS_REGION`, ...).

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

    /// This source seen by one stage of a process serving several (the Lambda router):
    /// `TELEPIPE_X` is looked up as `TELEPIPE_{scope}__X` first, then as itself, so the
    /// variables that differ between stages (their queues) are set once per stage and
    /// the rest once for all.
    pub fn scoped(&'a self, scope: &'a str) -> Env<'a> {
        Env {
            lookup: Box::new(move |name| {
                name.strip_prefix("TELEPIPE_")
                    .and_then(|rest| self.raw(&format!("TELEPIPE_{scope}__{rest}")))
                    .or_else(|| self.raw(name))
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

/// Where each kind of object lives in its bucket unless configured otherwise.
pub const DEFAULT_RECORDINGS_PREFIX: &str = "recordings/";
pub const DEFAULT_TRANSCRIPTS_PREFIX: &str = "transcripts/";
pub const DEFAULT_RESULTS_PREFIX: &str = "clinical/";
/// Where platforms point their Chime media capture sinks, below the recordings bucket.
pub const DEFAULT_CAPTURE_PREFIX: &str = "captures/";

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

/// [`prefix`] for the operator tools (`forget`, `reprocess`, `status`): an invalid value
/// reads as the default, since the workers refuse to start with it and nothing is under it.
pub fn prefix_or_default(env: &Env, name: &'static str, default: &str) -> String {
    prefix(env, name, default).unwrap_or_else(|_| default.to_owned())
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
    /// `TELEPIPE_DLQ_URL` (required unless `TELEPIPE_DLQ_SUFFIX` is set): the source queue's dead-letter queue, where permanent
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
            dlq_url: Self::dlq_url(env)?,
            max_receives,
            retry_base: Duration::from_secs(base),
            retry_max: Duration::from_secs(max),
        })
    }

    /// `TELEPIPE_DLQ_URL`, or, where only `TELEPIPE_DLQ_SUFFIX` is set (the Lambda router, whose
    /// variables must fit Lambda's 4 KB), the consumed queue's URL with that suffix (the
    /// template names every dead-letter queue `{queue}-dlq`).
    fn dlq_url(env: &Env) -> Result<String, ConfigError> {
        match (
            env.optional("TELEPIPE_DLQ_URL"),
            env.optional("TELEPIPE_DLQ_SUFFIX"),
        ) {
            (Some(url), _) => Ok(url),
            (None, Some(suffix)) => Ok(format!(
                "{}{}",
                env.required("TELEPIPE_QUEUE_URL")?.trim_end_matches('/'),
                suffix.trim()
            )),
            (None, None) => env.required("TELEPIPE_DLQ_URL"),
        }
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

/// Whole minutes within `range` (the one parser of minute settings).
pub fn minutes_within(
    env: &Env,
    name: &'static str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ConfigError> {
    let value = env.parsed(name, default, "whole minutes")?;
    if !range.contains(&value) {
        return Err(ConfigError {
            variable: name,
            problem: format!(
                "must be from {} to {} minutes (got {value})",
                range.start(),
                range.end()
            ),
        });
    }
    Ok(value)
}

/// A duration in whole minutes, at most `max`.
pub fn minutes(
    env: &Env,
    name: &'static str,
    default: u32,
    max: u32,
) -> Result<jiff::SignedDuration, ConfigError> {
    let value = minutes_within(env, name, default, 0..=max)?;
    Ok(jiff::SignedDuration::from_mins(i64::from(value)))
}

/// A comma-separated list; empty items dropped.
pub fn list(env: &Env, name: &'static str) -> Vec<String> {
    env.optional(name)
        .map(|text| {
            text.split(',')
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A credential that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(crate) String);

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_dlq_suffix_names_each_queues_own_dead_letter_queue() {
        let pairs = [
            (
                "TELEPIPE_INTAKE__QUEUE_URL",
                "https://sqs/1/telepipe-intake",
            ),
            (
                "TELEPIPE_CLINICAL__QUEUE_URL",
                "https://sqs/1/telepipe-clinical",
            ),
            ("TELEPIPE_CLINICAL__DLQ_URL", "https://sqs/1/elsewhere"),
            ("TELEPIPE_DLQ_SUFFIX", "-dlq"),
        ];
        let env = Env::from_pairs(&pairs);
        let intake = ConsumerConfig::from_env(&env.scoped("INTAKE")).unwrap();
        assert_eq!(intake.dlq_url, "https://sqs/1/telepipe-intake-dlq");
        // An explicit URL wins over the suffix.
        let clinical = ConsumerConfig::from_env(&env.scoped("CLINICAL")).unwrap();
        assert_eq!(clinical.dlq_url, "https://sqs/1/elsewhere");
    }

    #[test]
    fn a_scoped_variable_overrides_the_shared_one_for_its_stage_only() {
        let pairs = [
            ("TELEPIPE_QUEUE_URL", "shared"),
            ("TELEPIPE_INTAKE__QUEUE_URL", "intake"),
            ("TELEPIPE_CLINICAL__QUEUE_URL", " "),
        ];
        let env = Env::from_pairs(&pairs);
        let intake = env.scoped("INTAKE");
        assert_eq!(intake.required("TELEPIPE_QUEUE_URL").unwrap(), "intake");
        // A blank scoped value is unset: the shared one applies.
        let clinical = env.scoped("CLINICAL");
        assert_eq!(clinical.required("TELEPIPE_QUEUE_URL").unwrap(), "shared");
        assert_eq!(env.required("TELEPIPE_QUEUE_URL").unwrap(), "shared");
        let err = intake.required("TELEPIPE_DLQ_URL").unwrap_err();
        assert_eq!(err.variable, "TELEPIPE_DLQ_URL");
    }
}

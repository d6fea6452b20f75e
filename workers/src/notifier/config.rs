//! The `notifier` stage's settings: the SMS provider, idempotency window, and what only
//! the Lambda needs (table, senders, Twilio credentials).

use crate::config::{ConfigError, Env, Secret, TwilioCredentials};

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
    pub phone_key: Option<crate::phone_key::PhoneKey>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_sms_provider_is_named() {
        let err =
            NotifierConfig::from_env(&Env::from_pairs(&[("TELEPIPE_SMS_PROVIDER", "pigeon")]))
                .unwrap_err();
        assert_eq!(err.variable, "TELEPIPE_SMS_PROVIDER");
    }
}

//! The `clinical` stage's settings, read once at start-up.

use crate::config::{prefix, ConfigError, Env, DEFAULT_RESULTS_PREFIX, DEFAULT_TRANSCRIPTS_PREFIX};
use crate::retry::RetryPolicy;

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
            transcripts_prefix: prefix(
                env,
                "TELEPIPE_TRANSCRIPTS_PREFIX",
                DEFAULT_TRANSCRIPTS_PREFIX,
            )?,
            results_bucket: env.required("TELEPIPE_RESULTS_BUCKET")?,
            results_prefix: prefix(env, "TELEPIPE_RESULTS_PREFIX", DEFAULT_RESULTS_PREFIX)?,
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

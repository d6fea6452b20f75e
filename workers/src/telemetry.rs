//! Logging set-up shared by every binary: `tracing` JSON, one object per line, with the
//! fields of the enclosing spans (message id, session id, job name) on every line.
//!
//! Level from `LOG_LEVEL` (or, when that is unset or empty, `RUST_LOG`), default `info`;
//! either takes `tracing` filter directives (`debug`, `info,telepipe_workers=debug`). An
//! invalid filter falls back to `info`. Crates that log payloads ([`GUARDED_CRATES`]:
//! `lambda_runtime`, which logs every event body at trace, the AWS SDK, hyper) are held at
//! `warn` whatever the directives say, even when named: no level prints PHI.
//!
//! # Correlation id
//!
//! One id follows a recording from upload to notification: the 24-hex digest of the
//! recording's bucket, key and version (or ETag) — the suffix of its Transcribe job
//! name, so every later stage can re-derive it from the job name alone
//! (`telepipe_events::ids::JobName::correlation_id`). A message carrying the attribute
//! `telepipe.correlation-id` (e.g. a replayed dead letter) keeps the id it carries.
//! Stages set it with [`set_correlation_id`]: it is recorded on the current `record`
//! span (so every log line of the record has `correlation_id`) and, when the message is
//! dead-lettered, sent on as the `telepipe.correlation-id` attribute.

use std::cell::RefCell;
use std::future::Future;
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Crates that log what passes through them (event bodies, request and response bodies)
/// at debug or trace: `lambda_runtime` logs every incoming event at trace, the SDK and
/// the HTTP stack their payloads. They are held at `warn` whatever `LOG_LEVEL` says, so no
/// level a deployment can choose prints an address or transcript text.
pub const GUARDED_CRATES: [&str; 25] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "aws_lambda_events",
    "aws_config",
    "aws_runtime",
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_json",
    "aws_smithy_types",
    "aws_sdk_s3",
    "aws_sdk_sqs",
    "aws_sdk_eventbridge",
    "aws_sdk_transcribe",
    "aws_sdk_comprehendmedical",
    "aws_sdk_dynamodb",
    "aws_sdk_scheduler",
    "aws_sdk_sns",
    "aws_sdk_sesv2",
    "aws_sdk_secretsmanager",
    "aws_sdk_chimesdkmediapipelines",
    "hyper",
    "hyper_util",
];

/// Other crates held at `warn` for the same reason (TLS and HTTP/2 internals).
const GUARDED_EXTRA: [&str; 4] = ["h2", "rustls", "tower", "aws_sdk_sts"];

/// The filter for `directives` (e.g. `debug`): the caller's directives for everything
/// but the guarded crates, which stay at `warn` even when named.
pub fn filter(directives: &str) -> EnvFilter {
    let guarded = |directive: &str| {
        let target = directive.split(['=', '[']).next().unwrap_or("").trim();
        GUARDED_CRATES
            .iter()
            .chain(GUARDED_EXTRA.iter())
            .any(|name| target == *name || target.starts_with(&format!("{name}::")))
    };
    let mut parts: Vec<String> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !guarded(d))
        .map(str::to_owned)
        .collect();
    if parts.is_empty() {
        parts.push("info".into());
    }
    parts.extend(
        GUARDED_CRATES
            .iter()
            .chain(GUARDED_EXTRA.iter())
            .map(|name| format!("{name}=warn")),
    );
    EnvFilter::try_new(parts.join(",")).unwrap_or_else(|_| {
        let mut fallback = vec!["info".to_owned()];
        fallback.extend(GUARDED_CRATES.iter().map(|name| format!("{name}=warn")));
        EnvFilter::new(fallback.join(","))
    })
}

/// The log directives from `LOG_LEVEL`, else `RUST_LOG`, else `info` (empty counts as unset).
pub fn log_directives(var: impl Fn(&str) -> Option<String>) -> String {
    ["LOG_LEVEL", "RUST_LOG"]
        .into_iter()
        .find_map(|name| var(name).filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "info".into())
}

pub fn filter_from_env() -> EnvFilter {
    filter(&log_directives(|name| std::env::var(name).ok()))
}

/// The JSON subscriber every worker logs through, writing to `writer`.
pub fn json_subscriber<W>(writer: W, filter: EnvFilter) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(true)
        .with_target(false)
        .finish()
}

/// Installs the JSON subscriber on stdout (CloudWatch Logs on Lambda).
pub fn init_json_logging() {
    tracing::subscriber::set_global_default(json_subscriber(std::io::stdout, filter_from_env()))
        .expect("logging is initialised once");
}

/// Message attribute carrying the correlation id on messages telepipe sends.
pub const ATTR_CORRELATION_ID: &str = "telepipe.correlation-id";

/// Whether `id` can be a correlation id: 8 to 64 ASCII letters, digits, `-` or `_`.
pub fn is_valid_correlation_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The correlation id of a recording: the digest its job name ends with.
pub fn recording_correlation_id(bucket: &str, key: &str, object_version: &str) -> String {
    telepipe_events::ids::recording_digest(bucket, key, object_version)
}

/// The message's correlation id: (id, whether it came with the message).
struct Correlation {
    id: Option<String>,
    incoming: bool,
}

tokio::task_local! {
    static CORRELATION: RefCell<Correlation>;
}

/// Runs one message's work with `incoming` (its `telepipe.correlation-id` attribute, if
/// valid) as the correlation id; returns the id in effect at the end.
pub async fn with_correlation<F: Future>(
    incoming: Option<&str>,
    future: F,
) -> (F::Output, Option<String>) {
    let incoming = incoming
        .filter(|id| is_valid_correlation_id(id))
        .map(str::to_owned);
    let cell = RefCell::new(Correlation {
        incoming: incoming.is_some(),
        id: incoming,
    });
    CORRELATION
        .scope(cell, async {
            let output = future.await;
            let id = CORRELATION
                .try_with(|c| c.borrow().id.clone())
                .ok()
                .flatten();
            (output, id)
        })
        .await
}

/// The correlation id in effect for the current message, if any.
pub fn current_correlation_id() -> Option<String> {
    CORRELATION
        .try_with(|c| c.borrow().id.clone())
        .ok()
        .flatten()
}

/// Sets the correlation id derived by a stage, unless the message brought its own, and
/// records the one in effect on the current span. Returns it.
pub fn set_correlation_id(derived: &str) -> String {
    let effective = CORRELATION
        .try_with(|c| {
            let mut c = c.borrow_mut();
            if !c.incoming || c.id.is_none() {
                c.id = Some(derived.to_owned());
            }
            c.id.clone().unwrap_or_default()
        })
        .unwrap_or_else(|_| derived.to_owned());
    tracing::Span::current().record("correlation_id", effective.as_str());
    effective
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_level_comes_from_log_level_then_rust_log_then_info() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(log_directives(vars(&[])), "info");
        assert_eq!(log_directives(vars(&[("RUST_LOG", "debug")])), "debug");
        assert_eq!(
            log_directives(vars(&[("LOG_LEVEL", "warn"), ("RUST_LOG", "debug")])),
            "warn"
        );
        assert_eq!(
            log_directives(vars(&[("LOG_LEVEL", " "), ("RUST_LOG", "debug")])),
            "debug"
        );
        // Payload-logging crates stay at warn, even when named; an invalid filter falls
        // back to info with the same guards.
        for directives in [
            "trace",
            "trace,aws_smithy_runtime=debug,lambda_runtime=trace",
        ] {
            let text = filter(directives).to_string();
            for name in GUARDED_CRATES {
                assert!(text.contains(&format!("{name}=warn")), "{name} in {text}");
            }
            assert!(
                !text.contains("=debug") && !text.contains("lambda_runtime=trace"),
                "{text}"
            );
        }
        assert!(filter("telepipe_workers::notifier=trace")
            .to_string()
            .contains("telepipe_workers::notifier=trace"));
        let bad = filter("=[bad").to_string();
        assert!(
            bad.split(',').any(|d| d == "info") && bad.contains("lambda_runtime=warn"),
            "{bad}"
        );
    }

    #[test]
    fn correlation_ids_are_the_job_name_digest() {
        let session = telepipe_events::ids::SessionId::parse("s-1").unwrap();
        let job = telepipe_events::ids::JobName::for_recording(
            &session,
            "b",
            "recordings/s-1/a.wav",
            "v1",
        );
        let id = recording_correlation_id("b", "recordings/s-1/a.wav", "v1");
        assert_eq!(job.correlation_id(), Some(id.as_str()));
        assert!(is_valid_correlation_id(&id));
        assert!(!is_valid_correlation_id("has space in it"));
        assert!(!is_valid_correlation_id("short"));
    }

    #[tokio::test]
    async fn an_incoming_correlation_id_wins_over_the_derived_one() {
        let ((), id) = with_correlation(Some("incoming-123"), async {
            assert_eq!(set_correlation_id("derived-456"), "incoming-123");
        })
        .await;
        assert_eq!(id.as_deref(), Some("incoming-123"));
        let ((), id) = with_correlation(Some("bad id!"), async {
            set_correlation_id("derived-456");
        })
        .await;
        assert_eq!(id.as_deref(), Some("derived-456"));
        let ((), id) = with_correlation(None, async {}).await;
        assert_eq!(id, None);
    }
}

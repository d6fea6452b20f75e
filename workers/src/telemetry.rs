//! Logging set-up shared by every binary: `tracing` JSON, one object per line, with the
//! fields of the enclosing spans (message id, session id, job name) on every line.
//!
//! Level from `LOG_LEVEL` (or `RUST_LOG`), default `info`. The AWS SDK's own crates are
//! held at `warn` unless named explicitly, because their trace output can include
//! request bodies, which may hold PHI.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The filter for `directives` (e.g. `debug`), with the SDK's crates guarded.
pub fn filter(directives: &str) -> EnvFilter {
    let guarded = if directives.contains("aws_") || directives.contains("hyper") {
        directives.to_owned()
    } else {
        format!("{directives},aws_smithy_runtime=warn,aws_smithy_http=warn,aws_config=warn,aws_sdk_s3=warn,hyper=warn,rustls=warn")
    };
    EnvFilter::try_new(&guarded).unwrap_or_else(|_| EnvFilter::new("info"))
}

pub fn filter_from_env() -> EnvFilter {
    filter(
        &std::env::var("LOG_LEVEL")
            .or_else(|_| std::env::var("RUST_LOG"))
            .unwrap_or_else(|_| "info".into()),
    )
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

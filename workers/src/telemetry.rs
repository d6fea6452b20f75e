//! Logging set-up shared by every binary: `tracing` JSON, one object per line, with the
//! fields of the enclosing spans (message id, session id, job name) on every line.
//!
//! Level from `LOG_LEVEL` (or `RUST_LOG`), default `info`. The AWS SDK's own crates are
//! held at `warn` unless named explicitly, because their trace output can include
//! request bodies, which may hold PHI.

use tracing_subscriber::EnvFilter;

pub fn filter_from_env() -> EnvFilter {
    let directives = std::env::var("LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let guarded = if directives.contains("aws_") || directives.contains("hyper") {
        directives
    } else {
        format!("{directives},aws_smithy_runtime=warn,aws_smithy_http=warn,aws_config=warn,aws_sdk_s3=warn,hyper=warn,rustls=warn")
    };
    EnvFilter::try_new(&guarded).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the JSON subscriber writing to stdout (CloudWatch Logs on Lambda).
pub fn init_json_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter_from_env())
        .with_current_span(true)
        .with_span_list(true)
        .with_target(false)
        .init();
}

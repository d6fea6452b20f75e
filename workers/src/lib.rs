//! telepipe's stages and everything that drives them.
//!
//! - `intake`, `clinical`: the stages, plain async functions over the `ports`.
//! - `status`: per-recording state transitions and their store; `sweeper`: the scheduled
//!   stage acting on recordings stuck past a deadline.
//! - `error`: the retryable/permanent taxonomy every failure is sorted into.
//! - `batch`: driving a stage over a queue batch (partial failures, dead letters, backoff).
//! - `aws`: SDK adapters of the ports; `memory`: in-memory adapters and `synth`: synthetic
//!   transcripts, both test support behind the `testkit` feature (not production modules).
//! - `config`: environment variables, validated once at start-up.
//! - `metrics`, `telemetry`: CloudWatch EMF metrics, JSON logs and correlation ids.

pub mod audit;
#[cfg(feature = "aws")]
pub mod aws;
pub mod batch;
pub mod capture;
pub mod clinical;
pub mod clock;
pub mod config;
#[cfg(any(test, feature = "testkit"))]
pub mod conformance;
pub mod error;
pub mod intake;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod media;
#[cfg(any(test, feature = "testkit"))]
pub mod memory;
pub mod metrics;
pub mod notifier;
pub mod phone_key;
pub mod ports;
pub mod records;
pub mod replies;
pub mod retry;
pub mod session_state;
pub mod sessions;
pub mod status;
pub mod sweeper;
#[cfg(any(test, feature = "testkit"))]
pub mod synth;
pub mod telemetry;

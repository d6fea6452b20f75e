//! Operator tooling: dead letters (`telepipe dlq list|peek|replay`) and a session's data
//! (`telepipe forget`, `telepipe reprocess`).
//!
//! - `port`: the narrow `DlqAdmin` port the tooling needs from a queue service;
//! - `message`: what a dead letter says about itself, PHI-free body summaries, filters;
//! - `journal`: the replay journal (audit record and interruption safety);
//! - `replay`: the replay algorithm, one async function over the port;
//! - `memory`: in-memory adapter and fault injection, test support behind the `testkit`
//!   feature; `sqs`: Amazon SQS (feature `aws`); the local runtime's adapter lives in
//!   `telepipe_local::dlq`;
//! - `session_data`: `telepipe forget` / `reprocess` over the `SessionData` port;
//!   `aws_session` the AWS adapter (feature `aws`), the local one is `telepipe_local::forget`.
//!
//! The command line itself (arguments, output, exit codes) is the `telepipe-cli` crate.

#[cfg(feature = "aws")]
pub mod aws_session;
pub mod journal;
#[cfg(any(test, feature = "testkit"))]
pub mod memory;
pub mod message;
pub mod port;
pub mod replay;
pub mod session_data;
#[cfg(feature = "aws")]
pub mod sqs;

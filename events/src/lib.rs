//! telepipe's contracts: every message it parses and every event and document it emits.
//!
//! Inputs are parsed tolerantly (real S3 and moto notifications, Transcribe Medical
//! output in its speaker-, channel- and unlabelled shapes); outputs carry a
//! `schema_version` and a stable `event_id` so at-least-once delivery can be deduplicated
//! downstream. No output type has a field for transcript or entity text except the
//! results document, which lives in the KMS-encrypted results bucket.

pub mod audit;
pub mod capture;
pub mod ids;
pub mod notify;
pub mod pipeline;
pub mod replies;
pub mod results;
pub mod s3;
pub mod schema;
pub mod sessions;
pub mod sweeper;
pub mod transcribe;

/// Version of every event and document shape in this crate; bumped on breaking change.
pub const SCHEMA_VERSION: u32 = 1;

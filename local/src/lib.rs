//! telepipe's local runtime: the pipeline in one process, offline.
//!
//! The stages and batch driver are the Lambda workers' own (`telepipe-workers`); this
//! crate supplies the other side of each port — a filesystem object store with S3
//! notifications (`store`), durable SQLite queues (`queue`), an EventBridge-compatible
//! bus (`bus`, `pattern`), a local transcriber running Whisper (`transcriber`) and an
//! offline clinical NLP engine (`nlp`), a Chime media concatenator (`capture`), the
//! per-recording status store (`status_store`)
//! — and `runtime`, which drives them and the sweeper. `dlq` and `forget` adapt the data
//! directory to the operator tooling's ports (`telepipe dlq`, `forget`, `reprocess`);
//! `status`, `timeline` and `demo` gather what `telepipe status` and `telepipe demo` show.
//! The `telepipe` command itself (arguments, output, exit codes) is the `telepipe-cli` crate.

pub mod audit;
pub mod bus;
pub mod capture;
pub mod console;
pub mod db;
pub mod demo;
pub mod dlq;
pub mod faults;
pub mod forget;
pub mod nlp;
pub mod pattern;
pub mod queue;
pub mod runtime;
pub mod sessions;
pub mod status;
pub mod status_store;
pub mod store;
pub mod timeline;
pub mod transcriber;

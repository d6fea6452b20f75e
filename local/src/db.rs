//! The local runtime's one SQLite database (`DATA_DIR/telepipe.db`): queues and their
//! messages, transcription jobs, published events, the objects already announced, and
//! the status store (`status_transitions`, `recording_status`; see `status_store`).
//!
//! WAL journal with `synchronous=NORMAL`: a committed transaction survives the process
//! being killed (kill -9), which is the failure the local runtime must tolerate.

use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    visibility_secs INTEGER NOT NULL,
    max_receives INTEGER NOT NULL,
    dead_letter_queue TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}',
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT UNIQUE,
    in_flight INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at, seq);
CREATE TABLE IF NOT EXISTS transcription_jobs (
    name TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    failure_reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    detail_type TEXT NOT NULL,
    event_id TEXT,
    session_id TEXT,
    time INTEGER NOT NULL,
    envelope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events (session_id, seq);
CREATE TABLE IF NOT EXISTS status_transitions (
    session_id TEXT NOT NULL,
    recording TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    job_name TEXT,
    object_ref TEXT,
    error_class TEXT,
    reason TEXT,
    PRIMARY KEY (session_id, recording, attempt, step)
);
CREATE INDEX IF NOT EXISTS status_transitions_state ON status_transitions (state, at_ms);
CREATE TABLE IF NOT EXISTS recording_status (
    session_id TEXT NOT NULL,
    recording TEXT NOT NULL,
    state TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    job_name TEXT,
    object_ref TEXT,
    error_class TEXT,
    reason TEXT,
    PRIMARY KEY (session_id, recording)
);
CREATE INDEX IF NOT EXISTS recording_status_state ON recording_status (state, since_ms);
CREATE TABLE IF NOT EXISTS media_concatenations (
    token TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL UNIQUE,
    capture_pipeline_arn TEXT NOT NULL,
    sink_key TEXT,
    status TEXT NOT NULL,
    chunks_joined INTEGER NOT NULL DEFAULT 0,
    chunks_skipped INTEGER NOT NULL DEFAULT 0,
    audio_ms INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS joined_chunks (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE TABLE IF NOT EXISTS announced_objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    modified_ns INTEGER NOT NULL,
    PRIMARY KEY (bucket, key)
);
";

/// A shared handle to the database. Every operation is a short transaction, so one
/// connection behind a mutex serves all tasks of the runtime.
#[derive(Clone)]
pub struct Db(Arc<Mutex<Connection>>);

impl Db {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let connection = Connection::open(path)?;
        Self::prepare(connection)
    }

    pub fn in_memory() -> rusqlite::Result<Self> {
        Self::prepare(Connection::open_in_memory()?)
    }

    fn prepare(connection: Connection) -> rusqlite::Result<Self> {
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        // Deleted rows are overwritten, not left readable in free pages: `forget` must
        // leave nothing of a session behind in the file.
        connection.pragma_update(None, "secure_delete", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self(Arc::new(Mutex::new(connection))))
    }

    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls
        // back), so a poisoned mutex is still safe to use.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Milliseconds since the Unix epoch: the workers' clock, one home for both runtimes.
pub use telepipe_workers::status::now_ms;

/// A random 128-bit id in hex.
pub fn random_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// A secret: 32 bytes from the operating system's CSPRNG (not a seeded generator), as hex.
pub fn random_secret_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

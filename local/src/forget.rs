//! The `SessionData` port (`telepipe_ops::session_data`, behind `telepipe forget` and
//! `telepipe reprocess`) over a local data directory: the bucket folders, the SQLite
//! tables (timers, queued messages, intents, sessions, status, events, transcription
//! jobs, announced objects), the outbox folder, and the `audit` table this module owns.
//!
//! Object keys live only in handles (never printed); labels are object-reference
//! digests, ids and names.

use crate::db::Db;
use crate::queue::Queues;
use crate::runtime::{
    CLINICAL_QUEUE, INTAKE_QUEUE, RECORDINGS_BUCKET, RESULTS_BUCKET, TRANSCRIPTS_BUCKET,
};
use crate::sessions::LocalScheduler;
use crate::status_store::SqliteStatus;
use rusqlite::{params, OptionalExtension};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use telepipe_events::ids::object_ref;
use telepipe_ops::session_data::{AuditEntry, Item, SessionData, SessionObject, Stage, Store};
use telepipe_workers::config::{
    prefix_or_default, Env, DEFAULT_CAPTURE_PREFIX, DEFAULT_RECORDINGS_PREFIX,
    DEFAULT_RESULTS_PREFIX, DEFAULT_TRANSCRIPTS_PREFIX,
};
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::status::StatusStore;

const AUDIT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    session_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_session ON audit (session_id, action, state);
";

fn storage(operation: &'static str) -> impl Fn(rusqlite::Error) -> PortError {
    move |_| PortError::new(PortErrorKind::Unavailable, "local-forget", operation)
}

fn io(operation: &'static str) -> impl Fn(std::io::Error) -> PortError {
    move |err| {
        let kind = match err.kind() {
            std::io::ErrorKind::PermissionDenied => PortErrorKind::AccessDenied,
            _ => PortErrorKind::Unavailable,
        };
        PortError::new(kind, "local-forget", operation)
    }
}

/// The local data directory as `SessionData`.
#[derive(Clone)]
pub struct LocalSessionData {
    data_dir: PathBuf,
    db: Db,
    queues: Queues,
    recordings_prefix: String,
    /// Chime capture sinks (`captures/{session}/`): chunks of the same visit, same bucket.
    capture_prefix: String,
    transcripts_prefix: String,
    results_prefix: String,
}

/// The workers' own prefix parser, so forget looks where they wrote. An invalid value
/// stopped the runtime at start-up, so nothing can have been written under it.
fn prefix(var: &'static str, default: &str) -> String {
    prefix_or_default(&Env::process(), var, default)
}

impl LocalSessionData {
    /// Over an open database (the runtime's own, in tests).
    pub fn new(data_dir: &Path, db: Db) -> Result<Self, rusqlite::Error> {
        crate::sessions::ensure_schema(&db)?;
        db.lock().execute_batch(AUDIT_SCHEMA)?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            queues: Queues::new(db.clone()),
            db,
            recordings_prefix: prefix("TELEPIPE_RECORDINGS_PREFIX", DEFAULT_RECORDINGS_PREFIX),
            capture_prefix: prefix("TELEPIPE_CAPTURE_PREFIX", DEFAULT_CAPTURE_PREFIX),
            transcripts_prefix: prefix("TELEPIPE_TRANSCRIPTS_PREFIX", DEFAULT_TRANSCRIPTS_PREFIX),
            results_prefix: prefix("TELEPIPE_RESULTS_PREFIX", DEFAULT_RESULTS_PREFIX),
        })
    }

    /// Opens `DATA_DIR/telepipe.db` of an existing data directory.
    pub fn open(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join("telepipe.db");
        if !path.exists() {
            return Err(format!(
                "{} holds no telepipe data (no telepipe.db): check --data-dir",
                data_dir.display()
            ));
        }
        let db = Db::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::new(data_dir, db).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every audit entry, oldest first (for tests and inspection).
    pub fn audit_entries(&self) -> Result<Vec<AuditEntry>, PortError> {
        let db = self.db.lock();
        let mut statement = db
            .prepare("SELECT entry FROM audit ORDER BY id")
            .map_err(storage("ListAudit"))?;
        let rows = statement
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(storage("ListAudit"))?;
        let mut entries = Vec::new();
        for row in rows {
            let text = row.map_err(storage("ListAudit"))?;
            if let Ok(entry) = serde_json::from_str(&text) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    fn bucket_folder(&self, bucket: &str, prefix: &str, session_id: &str) -> PathBuf {
        let mut path = self.data_dir.join("buckets").join(bucket);
        for segment in prefix.split('/').filter(|s| !s.is_empty()) {
            path.push(segment);
        }
        path.join(session_id)
    }

    /// (key, size) of the files under `{prefix}{session}/` of a bucket.
    fn files(
        &self,
        bucket: &str,
        prefix: &str,
        session_id: &str,
    ) -> Result<Vec<(String, u64)>, PortError> {
        let root = self.data_dir.join("buckets").join(bucket);
        let mut pending = vec![self.bucket_folder(bucket, prefix, session_id)];
        let mut files = Vec::new();
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(io("ListObjects")(err)),
            };
            for entry in entries {
                let entry = entry.map_err(io("ListObjects"))?;
                let path = entry.path();
                let file_type = entry.file_type().map_err(io("ListObjects"))?;
                if file_type.is_dir() {
                    pending.push(path);
                } else if let Some(key) = path
                    .strip_prefix(&root)
                    .ok()
                    .and_then(|p| p.to_str())
                    .map(|k| k.replace(std::path::MAIN_SEPARATOR, "/"))
                {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    files.push((key, size));
                }
            }
        }
        files.sort();
        Ok(files)
    }

    fn object_items(
        &self,
        store: Store,
        bucket: &str,
        prefix: &str,
        session_id: &str,
    ) -> Result<Vec<Item>, PortError> {
        Ok(self
            .files(bucket, prefix, session_id)?
            .into_iter()
            .map(|(key, _)| Item {
                store,
                label: format!("object {}", object_ref(bucket, &key)),
                handle: format!("file\n{bucket}\n{key}"),
            })
            .collect())
    }

    fn rows(&self, sql: &str, session_id: &str) -> Result<Vec<String>, PortError> {
        let db = self.db.lock();
        let mut statement = db.prepare(sql).map_err(storage("Query"))?;
        let rows = statement
            .query_map([session_id], |r| r.get::<_, String>(0))
            .map_err(storage("Query"))?;
        rows.collect::<Result<_, _>>().map_err(storage("Query"))
    }

    fn intent_ids(&self, session_id: &str) -> Result<Vec<String>, PortError> {
        self.rows(
            "SELECT intent_id FROM intents WHERE session_id = ?1 ORDER BY intent_id",
            session_id,
        )
    }

    fn messages_about(&self, session_id: &str) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        for queue in self.queues.queue_names().map_err(storage("ListQueues"))? {
            for message in self.queues.peek(&queue).map_err(storage("Peek"))? {
                if mentions(&message.body, session_id) {
                    items.push(Item {
                        store: Store::QueuedMessages,
                        label: format!("{queue} message {}", message.id),
                        handle: format!("message\n{}", message.id),
                    });
                }
            }
        }
        Ok(items)
    }

    fn sql_items(
        &self,
        store: Store,
        kind: &str,
        sql: &str,
        session_id: &str,
    ) -> Result<Vec<Item>, PortError> {
        Ok(self
            .rows(sql, session_id)?
            .into_iter()
            .map(|id| Item {
                store,
                label: format!("{kind} {id}"),
                handle: format!("{kind}\n{session_id}\n{id}"),
            })
            .collect())
    }

    fn is_session_key(&self, key: &str, session_id: &str) -> bool {
        [
            &self.recordings_prefix,
            &self.capture_prefix,
            &self.transcripts_prefix,
            &self.results_prefix,
        ]
        .iter()
        .any(|prefix| {
            key.strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix(session_id))
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// Whether a queued message body is about the session (S3 keys under its folder, a
/// `session_id` field, a Chime `externalMeetingId`).
fn mentions(body: &str, session_id: &str) -> bool {
    if telepipe_ops::message::session_ids(body)
        .iter()
        .any(|s| s == session_id)
    {
        return true;
    }
    serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| {
        v["detail"]["externalMeetingId"].as_str() == Some(session_id)
            || v["detail"]["session_id"].as_str() == Some(session_id)
    })
}

impl SessionData for LocalSessionData {
    async fn append_trail(
        &self,
        entry: &telepipe_events::audit::AuditEntry,
    ) -> Result<(), PortError> {
        crate::audit::LocalAuditLog::new(self.db.clone())
            .map_err(storage("WriteAudit"))?
            .append_now(entry)
    }

    fn describe(&self) -> String {
        format!("local {}", self.data_dir.display())
    }

    async fn operator(&self) -> String {
        std::env::var("TELEPIPE_OPERATOR")
            .or_else(|_| std::env::var("USER"))
            .or_else(|_| std::env::var("LOGNAME"))
            .map(|u| format!("local:{u}"))
            .unwrap_or_else(|_| "local:unknown".into())
    }

    async fn inventory(&self, session_id: &str, store: Store) -> Result<Vec<Item>, PortError> {
        match store {
            Store::Schedules => {
                let scheduler = LocalScheduler::new(self.db.clone(), self.queues.clone());
                Ok(scheduler
                    .list(Some(session_id))?
                    .into_iter()
                    .map(|t| Item {
                        store,
                        label: format!("timer {}", t.name),
                        handle: format!("timer\n{session_id}\n{}", t.name),
                    })
                    .collect())
            }
            Store::QueuedMessages => self.messages_about(session_id),
            Store::Outbox => {
                let intents = self.intent_ids(session_id)?;
                let dir = self.data_dir.join("outbox");
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(err) => return Err(io("ListOutbox")(err)),
                };
                let mut items = Vec::new();
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if intents
                        .iter()
                        .any(|intent| name.ends_with(&format!("-{intent}.json")))
                    {
                        items.push(Item {
                            store,
                            label: format!("outbox file {name}"),
                            handle: format!("outbox\n{name}"),
                        });
                    }
                }
                items.sort_by(|a, b| a.label.cmp(&b.label));
                Ok(items)
            }
            Store::Intents => self.sql_items(
                store,
                "intent",
                "SELECT intent_id FROM intents WHERE session_id = ?1 ORDER BY intent_id",
                session_id,
            ),
            Store::SessionState => self.sql_items(
                store,
                "session",
                "SELECT session_id FROM sessions WHERE session_id = ?1",
                session_id,
            ),
            Store::Status => {
                let mut items = self.sql_items(
                    store,
                    "transition",
                    "SELECT recording || '#' || attempt || '#' || step FROM status_transitions WHERE session_id = ?1 ORDER BY 1",
                    session_id,
                )?;
                items.extend(self.sql_items(
                    store,
                    "current",
                    "SELECT recording FROM recording_status WHERE session_id = ?1 ORDER BY 1",
                    session_id,
                )?);
                Ok(items)
            }
            Store::History => {
                let mut items = self.sql_items(
                    store,
                    "event",
                    "SELECT CAST(seq AS TEXT) FROM events WHERE session_id = ?1 ORDER BY seq",
                    session_id,
                )?;
                items.extend(self.sql_items(
                    store,
                    "job",
                    "SELECT name FROM transcription_jobs WHERE session_id = ?1 ORDER BY name",
                    session_id,
                )?);
                let announced: Vec<(String, String)> = {
                    let db = self.db.lock();
                    let mut statement = db
                        .prepare("SELECT bucket, key FROM announced_objects ORDER BY bucket, key")
                        .map_err(storage("Query"))?;
                    let rows = statement
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                        .map_err(storage("Query"))?;
                    rows.collect::<Result<_, _>>().map_err(storage("Query"))?
                };
                for (bucket, key) in announced {
                    if self.is_session_key(&key, session_id) {
                        items.push(Item {
                            store,
                            label: format!("announced {}", object_ref(&bucket, &key)),
                            handle: format!("announced\n{bucket}\n{key}"),
                        });
                    }
                }
                Ok(items)
            }
            Store::Results => {
                self.object_items(store, RESULTS_BUCKET, &self.results_prefix, session_id)
            }
            Store::Transcripts => self.object_items(
                store,
                TRANSCRIPTS_BUCKET,
                &self.transcripts_prefix,
                session_id,
            ),
            Store::Recordings => {
                let mut items = self.object_items(
                    store,
                    RECORDINGS_BUCKET,
                    &self.recordings_prefix,
                    session_id,
                )?;
                items.extend(self.object_items(
                    store,
                    RECORDINGS_BUCKET,
                    &self.capture_prefix,
                    session_id,
                )?);
                Ok(items)
            }
        }
    }

    async fn delete(&self, item: &Item) -> Result<(), PortError> {
        let parts: Vec<&str> = item.handle.splitn(3, '\n').collect();
        let execute = |sql: &str, values: &[&dyn rusqlite::ToSql]| {
            self.db
                .lock()
                .execute(sql, values)
                .map(|_| ())
                .map_err(storage("Delete"))
        };
        match parts.as_slice() {
            ["timer", _, name] => execute("DELETE FROM timers WHERE name = ?1", &[name]),
            ["message", id] => execute("DELETE FROM messages WHERE id = ?1", &[id]),
            ["intent", session, id] => execute(
                "DELETE FROM intents WHERE session_id = ?1 AND intent_id = ?2",
                &[session, id],
            ),
            ["session", session, _] => {
                execute("DELETE FROM sessions WHERE session_id = ?1", &[session])
            }
            ["transition", session, id] => execute(
                "DELETE FROM status_transitions WHERE session_id = ?1 AND recording || '#' || attempt || '#' || step = ?2",
                &[session, id],
            ),
            ["current", session, recording] => execute(
                "DELETE FROM recording_status WHERE session_id = ?1 AND recording = ?2",
                &[session, recording],
            ),
            ["event", session, seq] => execute(
                "DELETE FROM events WHERE session_id = ?1 AND CAST(seq AS TEXT) = ?2",
                &[session, seq],
            ),
            ["job", session, name] => execute(
                "DELETE FROM transcription_jobs WHERE session_id = ?1 AND name = ?2",
                &[session, name],
            ),
            ["announced", bucket, key] => execute(
                "DELETE FROM announced_objects WHERE bucket = ?1 AND key = ?2",
                &[bucket, key],
            ),
            ["outbox", name] => remove_file(&self.data_dir.join("outbox").join(name)),
            ["file", bucket, key] => {
                let root = self.data_dir.join("buckets").join(bucket);
                let path = root.join(key);
                remove_file(&path)?;
                // Empty folders of the session go too (best effort).
                let mut dir = path.parent().map(Path::to_path_buf);
                while let Some(current) = dir {
                    if current == root || std::fs::remove_dir(&current).is_err() {
                        break;
                    }
                    dir = current.parent().map(Path::to_path_buf);
                }
                Ok(())
            }
            _ => Err(PortError::new(
                PortErrorKind::InvalidRequest,
                "local-forget",
                "Delete",
            )),
        }
    }

    async fn write_audit(&self, entry: &AuditEntry) -> Result<(), PortError> {
        let at = entry.completed_at.as_deref().unwrap_or(&entry.started_at);
        // The lasting record first: the append-only, hash-chained trail keeps the
        // session's processing history and this forget, which deletes everything else.
        let trail = telepipe_ops::session_data::trail_entry(entry);
        crate::audit::LocalAuditLog::new(self.db.clone())
            .map_err(storage("WriteAudit"))?
            .append_now(&trail)?;
        self.db
            .lock()
            .execute(
                "INSERT INTO audit (id, action, session_id, state, at, entry) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET state = ?4, at = ?5, entry = ?6",
                params![entry.id, entry.action, entry.session_id, entry.state, at, entry.to_json()],
            )
            .map_err(storage("WriteAudit"))?;
        if entry.is_completed() {
            // Deleted rows must not linger in free pages or the write-ahead log
            // (`secure_delete` is on for every connection; this empties the WAL).
            self.db
                .lock()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(storage("Checkpoint"))?;
        }
        Ok(())
    }

    async fn unfinished_audit(&self, session_id: &str) -> Result<Option<AuditEntry>, PortError> {
        let text: Option<String> = self
            .db
            .lock()
            .query_row(
                "SELECT entry FROM audit WHERE session_id = ?1 AND action = 'forget' AND state = 'started' ORDER BY id DESC LIMIT 1",
                [session_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage("ReadAudit"))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    async fn objects(
        &self,
        session_id: &str,
        from: Stage,
    ) -> Result<Vec<SessionObject>, PortError> {
        let (bucket, prefix) = match from {
            Stage::Transcription => (RECORDINGS_BUCKET, &self.recordings_prefix),
            Stage::Clinical => (TRANSCRIPTS_BUCKET, &self.transcripts_prefix),
        };
        Ok(self
            .files(bucket, prefix, session_id)?
            .into_iter()
            .filter(|(key, _)| from == Stage::Transcription || key.ends_with(".json"))
            .map(|(key, size)| SessionObject {
                bucket: bucket.to_owned(),
                key,
                size,
                version_id: None,
            })
            .collect())
    }

    async fn last_attempt(&self, session_id: &str) -> Result<u32, PortError> {
        let status = SqliteStatus::new(self.db.clone());
        Ok(status
            .timeline(session_id)
            .await?
            .iter()
            .map(|t| t.attempt)
            .max()
            .unwrap_or(0))
    }

    async fn send(&self, to: Stage, body: &str) -> Result<(), PortError> {
        let queue = match to {
            Stage::Transcription => INTAKE_QUEUE,
            Stage::Clinical => CLINICAL_QUEUE,
        };
        self.queues
            .send(queue, body, &BTreeMap::new(), 0)
            .map(|_| ())
    }
}

fn remove_file(path: &Path) -> Result<(), PortError> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io("DeleteObject")(err)),
        _ => Ok(()),
    }
}

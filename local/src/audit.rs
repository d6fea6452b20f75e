//! The local audit trail: an append-only SQLite table in which each entry carries the
//! SHA-256 digest of the one before it (`telepipe_events::audit::chain_digest`), so
//! [`verify`] finds any entry that was edited, removed or moved. Triggers refuse updates
//! and deletes through SQLite itself; the chain catches whoever drops them first.
//!
//! Removing entries from the end leaves a shorter chain that still verifies: `verify`
//! prints the head digest so an operator can keep it elsewhere and compare later.

use crate::db::Db;
use rusqlite::{params, OptionalExtension};
use telepipe_events::audit::{chain_digest, AuditEntry};
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::ports::AuditLog;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id TEXT NOT NULL UNIQUE,
    session_id TEXT,
    at_ms INTEGER NOT NULL,
    entry TEXT NOT NULL,
    prev TEXT NOT NULL,
    digest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_session ON audit_log (session_id, at_ms);
CREATE TRIGGER IF NOT EXISTS audit_log_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

fn storage(operation: &'static str) -> impl Fn(rusqlite::Error) -> PortError {
    move |_| PortError::new(PortErrorKind::Unavailable, "local-audit", operation)
}

/// The audit trail of a data directory.
#[derive(Clone)]
pub struct LocalAuditLog {
    db: Db,
}

impl LocalAuditLog {
    pub fn new(db: Db) -> rusqlite::Result<Self> {
        db.lock().execute_batch(SCHEMA)?;
        Ok(Self { db })
    }

    /// Appends synchronously (the port's async `append` does the same).
    pub fn append_now(&self, entry: &AuditEntry) -> Result<(), PortError> {
        let mut connection = self.db.lock();
        let transaction = connection.transaction().map_err(storage("Append"))?;
        let exists: Option<i64> = transaction
            .query_row(
                "SELECT seq FROM audit_log WHERE entry_id = ?1",
                [&entry.entry_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage("Append"))?;
        if exists.is_some() {
            return Ok(());
        }
        let previous: String = transaction
            .query_row(
                "SELECT digest FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage("Append"))?
            .unwrap_or_default();
        let json = entry.to_json();
        let digest = chain_digest(&previous, &json);
        transaction
            .execute(
                "INSERT INTO audit_log (entry_id, session_id, at_ms, entry, prev, digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![entry.entry_id, entry.session_id, entry.at_ms, json, previous, digest],
            )
            .map_err(storage("Append"))?;
        transaction.commit().map_err(storage("Append"))
    }

    /// A session's entries (or every entry), at or after `since_ms`, oldest first.
    pub fn entries(
        &self,
        session_id: Option<&str>,
        since_ms: i64,
    ) -> rusqlite::Result<Vec<AuditEntry>> {
        let connection = self.db.lock();
        let mut statement = connection.prepare(
            "SELECT entry FROM audit_log WHERE (?1 IS NULL OR session_id = ?1) AND at_ms >= ?2
             ORDER BY at_ms, seq",
        )?;
        let rows = statement
            .query_map(params![session_id, since_ms], |r| r.get::<_, String>(0))?
            .filter_map(|text| text.ok().and_then(|t| serde_json::from_str(&t).ok()))
            .collect();
        Ok(rows)
    }
}

impl AuditLog for LocalAuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<(), PortError> {
        self.append_now(entry)
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub entries: u64,
    /// The last entry's digest: keep it elsewhere to detect a truncated tail later.
    pub head: String,
    /// The first entry that breaks the chain, and why.
    pub broken: Option<(i64, &'static str)>,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Walks the chain from the first entry: each must name the previous digest, hash to its
/// own digest, and parse as the entry its id says.
pub fn verify(db: &Db) -> rusqlite::Result<Verification> {
    let connection = db.lock();
    connection.execute_batch(SCHEMA)?;
    let mut statement = connection.prepare(
        "SELECT seq, entry_id, entry, prev, digest, session_id, at_ms FROM audit_log ORDER BY seq",
    )?;
    let mut rows = statement.query([])?;
    let mut expected_prev = String::new();
    let mut entries = 0;
    while let Some(row) = rows.next()? {
        let (seq, entry_id, entry, prev, digest): (i64, String, String, String, String) = (
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
        );
        let (session_id, at_ms): (Option<String>, i64) = (row.get(5)?, row.get(6)?);
        entries += 1;
        let broken = if prev != expected_prev {
            Some("does not follow the entry before it (one was removed, added or moved)")
        } else if chain_digest(&prev, &entry) != digest {
            Some("its content does not match its digest (edited)")
        } else if serde_json::from_str::<AuditEntry>(&entry)
            .map(|e| e.entry_id != entry_id || e.session_id != session_id || e.at_ms != at_ms)
            .unwrap_or(true)
        {
            // The columns reads filter on must say what the hashed entry says.
            Some("its id, session or time column does not match its content")
        } else {
            None
        };
        if let Some(why) = broken {
            return Ok(Verification {
                entries,
                head: digest,
                broken: Some((seq, why)),
            });
        }
        expected_prev = digest;
    }
    Ok(Verification {
        entries,
        head: expected_prev,
        broken: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use telepipe_events::audit::AuditAction;

    fn log_with(n: usize) -> (Db, LocalAuditLog) {
        let db = Db::in_memory().unwrap();
        let log = LocalAuditLog::new(db.clone()).unwrap();
        for i in 0..n {
            let entry = AuditEntry::new(
                "local",
                AuditAction::RecordingReceived,
                Some("s-1"),
                vec![format!("rec-{i}")],
                i as i64,
            );
            log.append_now(&entry).unwrap();
            log.append_now(&entry).unwrap();
        }
        (db, log)
    }

    fn tamper(db: &Db, sql: &str) {
        let connection = db.lock();
        connection
            .execute_batch(
                "DROP TRIGGER audit_log_append_only_update; DROP TRIGGER audit_log_append_only_delete;",
            )
            .unwrap();
        connection.execute_batch(sql).unwrap();
    }

    #[test]
    fn an_intact_chain_verifies_and_duplicates_append_nothing() {
        let (db, log) = log_with(4);
        let report = verify(&db).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.entries, 4);
        assert_eq!(report.head.len(), 64);
        assert_eq!(log.entries(Some("s-1"), 0).unwrap().len(), 4);
        assert_eq!(log.entries(Some("s-1"), 2).unwrap().len(), 2);
    }

    #[test]
    fn updates_and_deletes_are_refused_by_the_database() {
        let (db, _) = log_with(2);
        let connection = db.lock();
        assert!(connection
            .execute("UPDATE audit_log SET at_ms = 0", [])
            .is_err());
        assert!(connection.execute("DELETE FROM audit_log", []).is_err());
    }

    #[test]
    fn an_edited_entry_breaks_the_chain() {
        let (db, _) = log_with(3);
        tamper(
            &db,
            "UPDATE audit_log SET entry = replace(entry, 'rec-1', 'rec-X') WHERE seq = 2",
        );
        assert_eq!(verify(&db).unwrap().broken.map(|b| b.0), Some(2));
    }

    #[test]
    fn a_rewritten_lookup_column_breaks_the_chain() {
        let (db, _) = log_with(3);
        tamper(
            &db,
            "UPDATE audit_log SET session_id = 'elsewhere' WHERE seq = 2",
        );
        assert_eq!(verify(&db).unwrap().broken.map(|b| b.0), Some(2));
    }

    #[test]
    fn a_removed_entry_breaks_the_chain() {
        let (db, _) = log_with(3);
        tamper(&db, "DELETE FROM audit_log WHERE seq = 2");
        assert_eq!(verify(&db).unwrap().broken.map(|b| b.0), Some(3));
    }

    #[test]
    fn reordered_entries_break_the_chain() {
        let (db, _) = log_with(3);
        tamper(
            &db,
            "UPDATE audit_log SET seq = 10 WHERE seq = 1; UPDATE audit_log SET seq = 1 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 10;",
        );
        assert!(!verify(&db).unwrap().is_intact());
    }
}

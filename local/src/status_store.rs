//! The status store on the local SQLite database — `StatusStore` with the same rules as
//! the DynamoDB table: one row per (session, recording, attempt, step) in
//! `status_transitions` (the first kept), and each recording's current state in
//! `recording_status`, both written in one transaction — and `QueueSender`, the
//! sweeper's way to re-feed a local queue.

use crate::db::Db;
use crate::queue::Queues;
use rusqlite::{params, OptionalExtension, Row};
use std::collections::BTreeMap;
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::ports::RefeedQueue;
use telepipe_workers::status::{Deadlines, RecordingStatus, State, StatusStore, Transition};

fn storage_error(operation: &'static str) -> impl Fn(rusqlite::Error) -> PortError {
    move |_| PortError::new(PortErrorKind::Unavailable, "local-status", operation)
}

/// `StatusStore` on `DATA_DIR/telepipe.db`.
#[derive(Clone)]
pub struct SqliteStatus {
    db: Db,
}

impl SqliteStatus {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Current states, optionally of one session, oldest first.
    pub fn current(&self, session_id: Option<&str>) -> Result<Vec<RecordingStatus>, PortError> {
        let connection = self.db.lock();
        let mut statement = connection
            .prepare(
                "SELECT session_id, recording, state, since_ms, attempt, job_name, object_ref, error_class, reason
                 FROM recording_status WHERE ?1 IS NULL OR session_id = ?1 ORDER BY since_ms",
            )
            .map_err(storage_error("Current"))?;
        let rows = statement
            .query_map([session_id], current_from)
            .map_err(storage_error("Current"))?
            .filter_map(Result::ok)
            .flatten()
            .collect();
        Ok(rows)
    }
}

const TRANSITION_COLUMNS: &str =
    "session_id, recording, attempt, state, at_ms, job_name, object_ref, error_class, reason";

fn transition_from(row: &Row<'_>) -> rusqlite::Result<Option<Transition>> {
    let state: String = row.get(3)?;
    Ok(State::parse(&state).map(|state| Transition {
        session_id: row.get(0).unwrap_or_default(),
        recording: row.get(1).unwrap_or_default(),
        attempt: row.get(2).unwrap_or(1),
        state,
        at_ms: row.get(4).unwrap_or_default(),
        job_name: row.get(5).ok().flatten(),
        object_ref: row.get(6).ok().flatten(),
        error_class: row.get(7).ok().flatten(),
        reason: row.get(8).ok().flatten(),
    }))
}

fn current_from(row: &Row<'_>) -> rusqlite::Result<Option<RecordingStatus>> {
    let state: String = row.get(2)?;
    Ok(State::parse(&state).map(|state| RecordingStatus {
        session_id: row.get(0).unwrap_or_default(),
        recording: row.get(1).unwrap_or_default(),
        state,
        since_ms: row.get(3).unwrap_or_default(),
        attempt: row.get(4).unwrap_or(1),
        job_name: row.get(5).ok().flatten(),
        object_ref: row.get(6).ok().flatten(),
        error_class: row.get(7).ok().flatten(),
        reason: row.get(8).ok().flatten(),
    }))
}

impl StatusStore for SqliteStatus {
    async fn record(&self, t: &Transition) -> Result<bool, PortError> {
        let error = storage_error("Record");
        let mut connection = self.db.lock();
        let tx = connection.transaction().map_err(&error)?;
        let inserted = tx
            .execute(
                "INSERT INTO status_transitions (session_id, recording, attempt, step, state, at_ms, job_name, object_ref, error_class, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                params![t.session_id, t.recording, t.attempt, t.step(), t.state.as_str(), t.at_ms,
                        t.job_name, t.object_ref, t.error_class, t.reason],
            )
            .map_err(&error)?;
        let stored = tx
            .query_row(
                &format!("SELECT {TRANSITION_COLUMNS} FROM status_transitions WHERE session_id = ?1 AND recording = ?2 AND attempt = ?3 AND step = ?4"),
                params![t.session_id, t.recording, t.attempt, t.step()],
                transition_from,
            )
            .map_err(&error)?
            .unwrap_or_else(|| t.clone());
        let current = tx
            .query_row(
                "SELECT session_id, recording, state, since_ms, attempt, job_name, object_ref, error_class, reason
                 FROM recording_status WHERE session_id = ?1 AND recording = ?2",
                params![t.session_id, t.recording],
                current_from,
            )
            .optional()
            .map_err(&error)?
            .flatten();
        if stored.supersedes(current.as_ref()) {
            tx.execute(
                "INSERT INTO recording_status (session_id, recording, state, since_ms, attempt, job_name, object_ref, error_class, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (session_id, recording) DO UPDATE SET state = ?3, since_ms = ?4, attempt = ?5,
                    job_name = ?6, object_ref = ?7, error_class = ?8, reason = ?9",
                params![stored.session_id, stored.recording, stored.state.as_str(), stored.at_ms, stored.attempt,
                        stored.job_name, stored.object_ref, stored.error_class, stored.reason],
            )
            .map_err(&error)?;
        }
        tx.commit().map_err(&error)?;
        Ok(inserted == 1)
    }

    async fn timeline(&self, session_id: &str) -> Result<Vec<Transition>, PortError> {
        let error = storage_error("Timeline");
        let connection = self.db.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {TRANSITION_COLUMNS} FROM status_transitions WHERE session_id = ?1 ORDER BY recording, at_ms, rowid"
            ))
            .map_err(&error)?;
        let rows = statement
            .query_map([session_id], transition_from)
            .map_err(&error)?
            .filter_map(Result::ok)
            .flatten()
            .collect();
        Ok(rows)
    }

    async fn stuck(
        &self,
        now_ms: i64,
        deadlines: &Deadlines,
    ) -> Result<Vec<RecordingStatus>, PortError> {
        let error = storage_error("Stuck");
        let connection = self.db.lock();
        let mut statement = connection
            .prepare(
                "SELECT session_id, recording, state, since_ms, attempt, job_name, object_ref, error_class, reason
                 FROM recording_status WHERE state = ?1 AND since_ms <= ?2",
            )
            .map_err(&error)?;
        let mut found = Vec::new();
        for state in State::OPEN {
            let Some(due) = deadlines.due_before_ms(state, now_ms) else {
                continue;
            };
            found.extend(
                statement
                    .query_map(params![state.as_str(), due], current_from)
                    .map_err(&error)?
                    .filter_map(Result::ok)
                    .flatten(),
            );
        }
        found.sort_by_key(|c| c.since_ms);
        Ok(found)
    }

    async fn query(
        &self,
        since_ms: i64,
        state: Option<State>,
    ) -> Result<Vec<Transition>, PortError> {
        let error = storage_error("Query");
        let connection = self.db.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {TRANSITION_COLUMNS} FROM status_transitions WHERE at_ms >= ?1 AND (?2 IS NULL OR state = ?2) ORDER BY at_ms, rowid"
            ))
            .map_err(&error)?;
        let rows = statement
            .query_map(params![since_ms, state.map(State::as_str)], transition_from)
            .map_err(&error)?
            .filter_map(Result::ok)
            .flatten()
            .collect();
        Ok(rows)
    }
}

/// `RefeedQueue` onto one local queue.
#[derive(Clone)]
pub struct QueueSender {
    pub queues: Queues,
    pub queue: String,
}

impl RefeedQueue for QueueSender {
    async fn send(&self, body: &str) -> Result<(), PortError> {
        self.queues
            .send(&self.queue, body, &BTreeMap::new(), 0)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sqlite_status_store_conforms() {
        let store = SqliteStatus::new(Db::in_memory().unwrap());
        telepipe_workers::conformance::status_store(&store, "conformance").await;
    }

    fn t(recording: &str, attempt: u32, state: State, at: i64) -> Transition {
        Transition::new("s1", recording, attempt, state, at).job(recording)
    }

    #[tokio::test]
    async fn transitions_are_recorded_once_and_current_state_only_moves_forward() {
        let store = SqliteStatus::new(Db::in_memory().unwrap());
        assert!(store
            .record(&t("r1", 1, State::Received, 10))
            .await
            .unwrap());
        assert!(store
            .record(&t("r1", 1, State::Transcribing, 11))
            .await
            .unwrap());
        // A redelivery: same step, later time; the first record is kept.
        assert!(!store
            .record(&t("r1", 1, State::Received, 99))
            .await
            .unwrap());
        let current = store.current(Some("s1")).unwrap();
        assert_eq!(
            (current[0].state, current[0].since_ms),
            (State::Transcribing, 11)
        );
        let failed = t("r1", 1, State::Failed, 20).failure("retryable", "internal_failure");
        store.record(&failed).await.unwrap();
        store
            .record(&t("r1", 2, State::Transcribing, 20))
            .await
            .unwrap();
        let mark = t("r1", 2, State::Stalled, 30).reason("transcribing");
        assert!(store.record(&mark).await.unwrap());
        assert!(!store.record(&mark).await.unwrap());
        let current = store.current(None).unwrap();
        assert_eq!(
            (current[0].state, current[0].attempt),
            (State::Transcribing, 2)
        );

        let timeline = store.timeline("s1").await.unwrap();
        assert_eq!(timeline.len(), 5);
        assert_eq!(timeline[0].at_ms, 10, "the first record of a step is kept");
        let failed_rows = store.query(0, Some(State::Failed)).await.unwrap();
        assert_eq!(failed_rows.len(), 1);
        assert_eq!(failed_rows[0].reason.as_deref(), Some("internal_failure"));
        assert_eq!(store.query(15, None).await.unwrap().len(), 3);

        let deadlines = Deadlines::default();
        let minute = 60_000;
        assert!(store
            .stuck(20 + 9 * minute, &deadlines)
            .await
            .unwrap()
            .is_empty());
        let stuck = store.stuck(20 + 10 * minute, &deadlines).await.unwrap();
        assert_eq!(stuck.len(), 1);
        assert_eq!(stuck[0].job_name.as_deref(), Some("r1"));
    }
}

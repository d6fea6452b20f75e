//! Local adapters of the sessions and notifier ports: session state and idempotency
//! records in SQLite (conditional writes as single statements), a scheduler of SQLite
//! timers that deliver to local queues when due, an outbox that writes each message
//! as one JSON file (and shows a masked copy to whoever watches it) instead of texting or
//! emailing anyone, and patients' texts put on the replies queue (`telepipe sms receive`).

use crate::db::Db;
use crate::queue::Queues;
use jiff::{SignedDuration, Timestamp};
use rusqlite::{params, OptionalExtension};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use telepipe_events::notify::NotificationRequest;
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::ports::{
    Claim, IntentLedger, IntentOutcome, MessageSender, NotificationQueue, OneTimeSchedule,
    OutboundMessage, ScheduleCreated, ScheduleTarget, Scheduler, SendReceipt, SessionStore,
    StoredSession,
};
use telepipe_workers::sessions::state::SessionState;

/// Queue names of the sessions and notifier stages.
pub const SESSIONS_QUEUE: &str = "sessions";
pub const SESSIONS_DLQ: &str = "sessions-dlq";
pub const NOTIFICATIONS_QUEUE: &str = "notifications";
pub const NOTIFICATIONS_DLQ: &str = "notifications-dlq";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    rev INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS intents (
    intent_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    claimed_at INTEGER,
    outcome TEXT,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_session ON intents (session_id);
CREATE TABLE IF NOT EXISTS timers (
    name TEXT PRIMARY KEY,
    fire_at INTEGER NOT NULL,
    time_zone TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (fire_at);
CREATE TABLE IF NOT EXISTS notification_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    intent_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notification_log_session ON notification_log (session_id, seq);
CREATE TABLE IF NOT EXISTS suppressions (
    phone_key TEXT NOT NULL,
    channel TEXT NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (phone_key, channel)
);
";

/// Creates the tables of this module (idempotent).
pub fn ensure_schema(db: &Db) -> rusqlite::Result<()> {
    db.lock().execute_batch(SCHEMA)
}

fn storage(
    service: &'static str,
    operation: &'static str,
) -> impl Fn(rusqlite::Error) -> PortError {
    move |_| PortError::new(PortErrorKind::Unavailable, service, operation)
}

fn corrupt(service: &'static str, operation: &'static str) -> PortError {
    PortError::new(PortErrorKind::InvalidRequest, service, operation).with_code("CorruptRow")
}

/// `SessionStore` in SQLite.
#[derive(Clone)]
pub struct LocalSessionStore {
    db: Db,
}

impl LocalSessionStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl SessionStore for LocalSessionStore {
    async fn load(&self, session_id: &str) -> Result<Option<StoredSession>, PortError> {
        let row: Option<(String, i64)> = self
            .db
            .lock()
            .query_row(
                "SELECT doc, rev FROM sessions WHERE session_id = ?1",
                [session_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(storage("local-sessions", "Load"))?;
        row.map(|(doc, rev)| {
            let state =
                serde_json::from_str(&doc).map_err(|_| corrupt("local-sessions", "Load"))?;
            Ok(StoredSession {
                state,
                revision: rev as u64,
            })
        })
        .transpose()
    }

    async fn save(&self, state: &SessionState, expected: Option<u64>) -> Result<u64, PortError> {
        let doc = serde_json::to_string(state).expect("state serializes");
        let now = Timestamp::now().as_second();
        let db = self.db.lock();
        let changed = match expected {
            None => db.execute(
                "INSERT INTO sessions (session_id, doc, rev, updated_at) VALUES (?1, ?2, 1, ?3) ON CONFLICT DO NOTHING",
                params![state.session_id, doc, now],
            ),
            Some(rev) => db.execute(
                "UPDATE sessions SET doc = ?2, rev = rev + 1, updated_at = ?3 WHERE session_id = ?1 AND rev = ?4",
                params![state.session_id, doc, now, rev as i64],
            ),
        }
        .map_err(storage("local-sessions", "Save"))?;
        if changed == 0 {
            return Err(PortError::new(
                PortErrorKind::Conflict,
                "local-sessions",
                "Save",
            ));
        }
        Ok(expected.unwrap_or(0) + 1)
    }

    async fn sessions_for_phone(&self, phone_key: &str) -> Result<Vec<String>, PortError> {
        let db = self.db.lock();
        let mut statement = db
            .prepare(
                "SELECT session_id FROM sessions WHERE json_extract(doc, '$.patient_phone_key') = ?1 ORDER BY session_id",
            )
            .map_err(storage("local-sessions", "Query"))?;
        let rows = statement
            .query_map([phone_key], |r| r.get::<_, String>(0))
            .map_err(storage("local-sessions", "Query"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(storage("local-sessions", "Query"))?;
        Ok(rows)
    }
}

/// `Suppressions` in SQLite: (phone key, channel) pairs that opted out.
#[derive(Clone)]
pub struct LocalSuppressions {
    db: Db,
}

impl LocalSuppressions {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl telepipe_workers::ports::Suppressions for LocalSuppressions {
    async fn is_suppressed(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
    ) -> Result<bool, PortError> {
        self.db
            .lock()
            .query_row(
                "SELECT 1 FROM suppressions WHERE phone_key = ?1 AND channel = ?2",
                params![phone_key, channel.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map(|row| row.is_some())
            .map_err(storage("local-suppressions", "Get"))
    }

    async fn suppress(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
        reason: &str,
    ) -> Result<(), PortError> {
        self.db
            .lock()
            .execute(
                "INSERT INTO suppressions (phone_key, channel, reason, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (phone_key, channel) DO NOTHING",
                params![
                    phone_key,
                    channel.as_str(),
                    reason,
                    Timestamp::now().as_second()
                ],
            )
            .map(|_| ())
            .map_err(storage("local-suppressions", "Put"))
    }

    async fn lift(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
    ) -> Result<(), PortError> {
        self.db
            .lock()
            .execute(
                "DELETE FROM suppressions WHERE phone_key = ?1 AND channel = ?2",
                params![phone_key, channel.as_str()],
            )
            .map(|_| ())
            .map_err(storage("local-suppressions", "Delete"))
    }
}

/// `IntentLedger` in SQLite.
#[derive(Clone)]
pub struct LocalLedger {
    db: Db,
    window: SignedDuration,
}

impl LocalLedger {
    pub fn new(db: Db, window: SignedDuration) -> Self {
        Self { db, window }
    }
}

impl IntentLedger for LocalLedger {
    async fn log(
        &self,
        entry: &telepipe_workers::ports::NotificationLogEntry,
    ) -> Result<(), PortError> {
        self.db
            .lock()
            .execute(
                "INSERT INTO notification_log (session_id, intent_id, outcome, at_ms, entry) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    entry.session_id,
                    entry.intent_id,
                    entry.outcome,
                    entry.at_ms,
                    serde_json::to_string(entry).expect("log entries serialize")
                ],
            )
            .map(|_| ())
            .map_err(storage("local-ledger", "Log"))
    }

    async fn claim(
        &self,
        session_id: &str,
        intent_id: &str,
        owner: &str,
        now: Timestamp,
    ) -> Result<Claim, PortError> {
        let db = self.db.lock();
        let error = storage("local-ledger", "Claim");
        // Expired records are gone, as DynamoDB's TTL makes them.
        db.execute(
            "DELETE FROM intents WHERE intent_id = ?1 AND expires_at < ?2",
            params![intent_id, now.as_second()],
        )
        .map_err(&error)?;
        let inserted = db
            .execute(
                "INSERT INTO intents (intent_id, session_id, status, owner, claimed_at, expires_at) VALUES (?1, ?2, 'claimed', ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![intent_id, session_id, owner, now.as_second(), now.as_second() + self.window.as_secs()],
            )
            .map_err(&error)?;
        if inserted == 1 {
            return Ok(Claim::Claimed);
        }
        let (status, claimed_at, outcome): (String, Option<i64>, Option<String>) = db
            .query_row(
                "SELECT status, claimed_at, outcome FROM intents WHERE intent_id = ?1",
                [intent_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(&error)?;
        match status.as_str() {
            "claimed" => Ok(Claim::InFlight {
                claimed_at: Timestamp::from_second(claimed_at.unwrap_or(0))
                    .map_err(|_| corrupt("local-ledger", "Claim"))?,
            }),
            _ => outcome
                .and_then(|o| serde_json::from_str(&o).ok())
                .map(Claim::Completed)
                .ok_or_else(|| corrupt("local-ledger", "Claim")),
        }
    }

    async fn complete(
        &self,
        session_id: &str,
        intent_id: &str,
        outcome: &IntentOutcome,
    ) -> Result<(), PortError> {
        let now = Timestamp::now().as_second();
        self.db
            .lock()
            .execute(
                "INSERT INTO intents (intent_id, session_id, status, outcome, expires_at) VALUES (?1, ?2, 'done', ?3, ?4)
                 ON CONFLICT (intent_id) DO UPDATE SET status = 'done', outcome = excluded.outcome, expires_at = excluded.expires_at",
                params![intent_id, session_id, serde_json::to_string(outcome).expect("outcomes serialize"), now + self.window.as_secs()],
            )
            .map_err(storage("local-ledger", "Complete"))?;
        Ok(())
    }

    async fn release(
        &self,
        _session_id: &str,
        intent_id: &str,
        owner: &str,
    ) -> Result<(), PortError> {
        self.db
            .lock()
            .execute(
                "DELETE FROM intents WHERE intent_id = ?1 AND owner = ?2 AND status = 'claimed'",
                params![intent_id, owner],
            )
            .map_err(storage("local-ledger", "Release"))?;
        Ok(())
    }
}

/// A pending timer, as `telepipe timers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub name: String,
    pub fire_at: Timestamp,
    pub time_zone: String,
    pub target: String,
    pub payload: String,
}

/// `Scheduler` on SQLite timers, delivering to the local queues when due.
#[derive(Clone)]
pub struct LocalScheduler {
    db: Db,
    queues: Queues,
}

impl LocalScheduler {
    pub fn new(db: Db, queues: Queues) -> Self {
        Self { db, queues }
    }

    fn queue_of(target: &str) -> &'static str {
        if target == ScheduleTarget::Sessions.as_str() {
            SESSIONS_QUEUE
        } else {
            NOTIFICATIONS_QUEUE
        }
    }

    /// Pending timers, soonest first (for one session when given).
    pub fn list(&self, session_id: Option<&str>) -> Result<Vec<Timer>, PortError> {
        let db = self.db.lock();
        let mut statement = db
            .prepare("SELECT name, fire_at, time_zone, target, payload FROM timers ORDER BY fire_at, name")
            .map_err(storage("local-scheduler", "List"))?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(storage("local-scheduler", "List"))?;
        let mut timers = Vec::new();
        for row in rows {
            let (name, fire_at, time_zone, target, payload) =
                row.map_err(storage("local-scheduler", "List"))?;
            let session = serde_json::from_str::<serde_json::Value>(&payload)
                .ok()
                .and_then(|v| v["session_id"].as_str().map(str::to_owned));
            if session_id.is_some() && session.as_deref() != session_id {
                continue;
            }
            timers.push(Timer {
                name,
                fire_at: Timestamp::from_millisecond(fire_at)
                    .map_err(|_| corrupt("local-scheduler", "List"))?,
                time_zone,
                target,
                payload,
            });
        }
        Ok(timers)
    }

    /// Delivers every timer due at `now` to its queue and deletes it (one transaction
    /// per timer: a crash delivers it at most once more, which the stages tolerate).
    pub fn fire_due(&self, now: Timestamp) -> Result<usize, PortError> {
        let due: Vec<Timer> = self
            .list(None)?
            .into_iter()
            .filter(|t| t.fire_at <= now)
            .collect();
        for timer in &due {
            self.fire(timer)?;
        }
        Ok(due.len())
    }

    /// Delivers one timer now, whenever it was due (`telepipe timers fire`).
    pub fn fire(&self, timer: &Timer) -> Result<(), PortError> {
        self.queues.send(
            Self::queue_of(&timer.target),
            &timer.payload,
            &BTreeMap::new(),
            0,
        )?;
        self.db
            .lock()
            .execute("DELETE FROM timers WHERE name = ?1", [&timer.name])
            .map_err(storage("local-scheduler", "Fire"))?;
        Ok(())
    }
}

impl Scheduler for LocalScheduler {
    async fn create(&self, schedule: &OneTimeSchedule) -> Result<ScheduleCreated, PortError> {
        let inserted = self
            .db
            .lock()
            .execute(
                "INSERT INTO timers (name, fire_at, time_zone, target, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                params![
                    schedule.name,
                    schedule.fire_at.as_millisecond(),
                    schedule.time_zone,
                    schedule.target.as_str(),
                    schedule.payload,
                    Timestamp::now().as_millisecond()
                ],
            )
            .map_err(storage("local-scheduler", "Create"))?;
        Ok(if inserted == 1 {
            ScheduleCreated::Created
        } else {
            ScheduleCreated::AlreadyExists
        })
    }

    async fn delete(&self, name: &str) -> Result<bool, PortError> {
        let deleted = self
            .db
            .lock()
            .execute("DELETE FROM timers WHERE name = ?1", [name])
            .map_err(storage("local-scheduler", "Delete"))?;
        Ok(deleted == 1)
    }
}

/// `NotificationQueue` on the local notifications queue.
#[derive(Clone)]
pub struct LocalNotifications {
    queues: Queues,
}

impl LocalNotifications {
    pub fn new(queues: Queues) -> Self {
        Self { queues }
    }
}

impl NotificationQueue for LocalNotifications {
    async fn enqueue(&self, request: &NotificationRequest) -> Result<(), PortError> {
        let body = serde_json::to_string(request).expect("requests serialize");
        self.queues
            .send(NOTIFICATIONS_QUEUE, &body, &BTreeMap::new(), 0)?;
        Ok(())
    }
}

/// An address with most of it hidden: `+1202•••••43`, `d•••@example.org`.
pub fn mask_address(address: &str) -> String {
    if let Some((local, domain)) = address.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}•••@{domain}");
    }
    let chars: Vec<char> = address.chars().collect();
    if chars.len() <= 6 {
        return "•".repeat(chars.len());
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "•".repeat(chars.len() - 7))
}

/// Masks every `address` string in a JSON value (phone numbers, email addresses).
pub fn mask_addresses(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match item {
                    serde_json::Value::String(text) if key == "address" => {
                        *text = mask_address(text);
                    }
                    other => mask_addresses(other),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_addresses),
        _ => {}
    }
}

/// What the outbox shows of a message it wrote. The address is masked: the full one stays
/// in the file only, since a terminal is scrollback, logs and screen shares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxCopy {
    pub channel: &'static str,
    /// `mask_address` of the recipient.
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    /// The file holding the whole message.
    pub path: PathBuf,
}

type Watcher = std::sync::Arc<dyn Fn(&OutboxCopy) + Send + Sync>;

/// `MessageSender` that writes `DIR/{time}-{intent}.json` per message and hands a masked
/// copy to its watcher, if any (`telepipe run` prints it: the local stand-in for a phone).
#[derive(Clone)]
pub struct Outbox {
    dir: PathBuf,
    watcher: Option<Watcher>,
}

impl Outbox {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            watcher: None,
        }
    }

    /// The same outbox, calling `watcher` after each message is written.
    pub fn watched(self, watcher: impl Fn(&OutboxCopy) + Send + Sync + 'static) -> Self {
        Self {
            watcher: Some(std::sync::Arc::new(watcher)),
            ..self
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl MessageSender for Outbox {
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, PortError> {
        let error = |_| PortError::new(PortErrorKind::Unavailable, "outbox", "Write");
        std::fs::create_dir_all(&self.dir).map_err(error)?;
        let now = Timestamp::now();
        let name = format!(
            "{}-{}.json",
            now.strftime("%Y%m%dT%H%M%S%.3fZ"),
            message.intent_id
        );
        let document = serde_json::json!({
            "channel": message.channel.as_str(),
            "to": message.to,
            "subject": message.subject,
            "body": message.body,
            "intent_id": message.intent_id,
            "written_at": now.to_string(),
        });
        let path = self.dir.join(&name);
        let partial = self.dir.join(format!(".{name}.partial"));
        std::fs::write(
            &partial,
            serde_json::to_vec_pretty(&document).expect("JSON"),
        )
        .map_err(error)?;
        std::fs::rename(&partial, &path).map_err(error)?;
        if let Some(watcher) = &self.watcher {
            watcher(&OutboxCopy {
                channel: message.channel.as_str(),
                to: mask_address(&message.to),
                subject: message.subject.clone(),
                body: message.body.clone(),
                path,
            });
        }
        Ok(SendReceipt {
            provider: "outbox",
            provider_message_id: Some(name),
        })
    }
}

/// A session's notification log (every send, skip and failure), oldest first.
pub fn notification_log(
    db: &Db,
    session_id: &str,
) -> rusqlite::Result<Vec<telepipe_workers::ports::NotificationLogEntry>> {
    ensure_schema(db)?;
    let connection = db.lock();
    let mut statement = connection
        .prepare("SELECT entry FROM notification_log WHERE session_id = ?1 ORDER BY seq")?;
    let rows = statement
        .query_map([session_id], |r| r.get::<_, String>(0))?
        .filter_map(|text| text.ok().and_then(|t| serde_json::from_str(&t).ok()))
        .collect();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sqlite_session_store_conforms() {
        let db = Db::in_memory().unwrap();
        ensure_schema(&db).unwrap();
        telepipe_workers::conformance::session_store(&LocalSessionStore::new(db), "conformance")
            .await;
    }
    use std::sync::Arc;

    fn db() -> Db {
        let db = Db::in_memory().unwrap();
        ensure_schema(&db).unwrap();
        db
    }

    #[test]
    fn printed_addresses_are_masked() {
        assert_eq!(mask_address("+12025550143"), "+1202•••••43");
        assert_eq!(mask_address("dr.lee@example.org"), "d•••@example.org");
        assert_eq!(mask_address("12345"), "•••••");
        for masked in [
            mask_address("+12025550143"),
            mask_address("dr.lee@example.org"),
        ] {
            assert!(
                !masked.contains("555014") && !masked.contains("lee"),
                "{masked}"
            );
        }
    }

    #[tokio::test]
    async fn state_writes_are_conditional_on_the_revision() {
        let store = LocalSessionStore::new(db());
        let state = SessionState::new("s-1");
        assert_eq!(store.save(&state, None).await.unwrap(), 1);
        assert_eq!(
            store.save(&state, None).await.unwrap_err().kind,
            PortErrorKind::Conflict
        );
        assert_eq!(store.save(&state, Some(1)).await.unwrap(), 2);
        assert_eq!(
            store.save(&state, Some(1)).await.unwrap_err().kind,
            PortErrorKind::Conflict
        );
        assert_eq!(store.load("s-1").await.unwrap().unwrap().revision, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_claim_wins_among_concurrent_consumers() {
        let ledger = Arc::new(LocalLedger::new(db(), SignedDuration::from_hours(1)));
        let now = Timestamp::now();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    ledger
                        .claim("s", "i-1", &format!("c{i}"), now)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut claimed = 0;
        for task in tasks {
            if task.await.unwrap() == Claim::Claimed {
                claimed += 1;
            }
        }
        assert_eq!(claimed, 1);
        // An expired record no longer blocks (the idempotency window has passed).
        let later = now.checked_add(SignedDuration::from_hours(2)).unwrap();
        assert_eq!(
            ledger.claim("s", "i-1", "late", later).await.unwrap(),
            Claim::Claimed
        );
    }

    #[tokio::test]
    async fn timers_fire_once_into_their_queue() {
        let db = db();
        let queues = Queues::new(db.clone());
        for name in [NOTIFICATIONS_QUEUE, SESSIONS_QUEUE] {
            queues
                .declare(&crate::queue::QueueSpec {
                    name: name.into(),
                    visibility_secs: 30,
                    max_receives: 5,
                    dead_letter_queue: None,
                })
                .unwrap();
        }
        let scheduler = LocalScheduler::new(db, queues.clone());
        let at: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let schedule = OneTimeSchedule {
            name: "tp-r-1".into(),
            fire_at: at,
            time_zone: "UTC".into(),
            target: ScheduleTarget::Notifications,
            payload: "{\"session_id\":\"s-1\"}".into(),
        };
        assert_eq!(
            scheduler.create(&schedule).await.unwrap(),
            ScheduleCreated::Created
        );
        assert_eq!(
            scheduler.create(&schedule).await.unwrap(),
            ScheduleCreated::AlreadyExists
        );
        assert_eq!(scheduler.list(Some("s-1")).unwrap().len(), 1);
        assert!(scheduler.list(Some("s-2")).unwrap().is_empty());
        assert_eq!(
            scheduler
                .fire_due("2026-03-01T09:59:59Z".parse().unwrap())
                .unwrap(),
            0
        );
        assert_eq!(scheduler.fire_due(at).unwrap(), 1);
        assert_eq!(scheduler.fire_due(at).unwrap(), 0);
        assert_eq!(queues.receive(NOTIFICATIONS_QUEUE, 10).unwrap().len(), 1);
        assert!(!scheduler.delete("tp-r-1").await.unwrap());
    }
}

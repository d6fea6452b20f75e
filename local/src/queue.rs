//! Durable queues in SQLite with the SQS semantics the stages rely on: visibility
//! timeout, receive count, delivery delay, redrive to a dead-letter queue after a
//! maximum receive count, and dead-lettering with a reason.
//!
//! Each operation is one transaction, so a kill -9 at any point loses nothing: a
//! received but undeleted message is delivered again (at least once).

use crate::db::{now_ms, random_id, Db};
use rusqlite::params;
use std::collections::BTreeMap;
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::ports::{DeadLetter, MessageQueue};

/// How a queue behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub visibility_secs: u32,
    pub max_receives: u32,
    pub dead_letter_queue: Option<String>,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMessage {
    pub id: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub receipt: String,
    pub receive_count: u32,
    pub sent_at_ms: i64,
}

/// Depths of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub oldest_sent_ms: Option<i64>,
}

fn storage_error(operation: &'static str) -> impl Fn(rusqlite::Error) -> PortError {
    // A busy or failing database is worth retrying; the operation says where.
    move |_| PortError::new(PortErrorKind::Unavailable, "local-queue", operation)
}

/// All queues of one data directory.
#[derive(Clone)]
pub struct Queues {
    db: Db,
}

impl Queues {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn declare(&self, spec: &QueueSpec) -> rusqlite::Result<()> {
        self.db.lock().execute(
            "INSERT INTO queues (name, visibility_secs, max_receives, dead_letter_queue) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET visibility_secs = ?2, max_receives = ?3, dead_letter_queue = ?4",
            params![spec.name, spec.visibility_secs, spec.max_receives, spec.dead_letter_queue],
        )?;
        Ok(())
    }

    pub fn send(
        &self,
        queue: &str,
        body: &str,
        attributes: &BTreeMap<String, String>,
        delay_secs: u32,
    ) -> Result<String, PortError> {
        let id = random_id();
        let now = now_ms();
        let attributes = serde_json::to_string(attributes).expect("attributes serialize");
        self.db
            .lock()
            .execute(
                "INSERT INTO messages (id, queue, body, attributes, sent_at, visible_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, queue, body, attributes, now, now + i64::from(delay_secs) * 1000],
            )
            .map_err(storage_error("SendMessage"))?;
        Ok(id)
    }

    /// Receives up to `max` visible messages, hiding each for the queue's visibility
    /// timeout. Messages already received `max_receives` times move to the dead-letter
    /// queue instead (the redrive policy), with reason `max_receives_exceeded`.
    pub fn receive(&self, queue: &str, max: usize) -> Result<Vec<LocalMessage>, PortError> {
        let mut connection = self.db.lock();
        let tx = connection
            .transaction()
            .map_err(storage_error("ReceiveMessage"))?;
        let (visibility_secs, max_receives, dead_letter_queue): (i64, u32, Option<String>) = tx
            .query_row(
                "SELECT visibility_secs, max_receives, dead_letter_queue FROM queues WHERE name = ?1",
                [queue],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|_| PortError::new(PortErrorKind::NotFound, "local-queue", "ReceiveMessage"))?;
        let now = now_ms();
        let candidates: Vec<(i64, String, String, String, u32, i64)> = {
            let mut statement = tx
                .prepare_cached(
                    "SELECT seq, id, body, attributes, receive_count, sent_at FROM messages
                     WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, seq LIMIT ?3",
                )
                .map_err(storage_error("ReceiveMessage"))?;
            let rows = statement
                .query_map(params![queue, now, (max * 2) as i64], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .map_err(storage_error("ReceiveMessage"))?;
            rows.collect::<Result<_, _>>()
                .map_err(storage_error("ReceiveMessage"))?
        };
        let mut received = Vec::new();
        for (seq, id, body, attributes, receive_count, sent_at) in candidates {
            if received.len() == max {
                break;
            }
            let mut attributes: BTreeMap<String, String> =
                serde_json::from_str(&attributes).unwrap_or_default();
            if receive_count >= max_receives {
                if let Some(dlq) = &dead_letter_queue {
                    attributes.insert("telepipe.reason".into(), "max_receives_exceeded".into());
                    attributes.insert("telepipe.source-queue".into(), queue.into());
                    tx.execute(
                        "UPDATE messages SET queue = ?1, attributes = ?2, visible_at = ?3, receive_count = 0, receipt = NULL, in_flight = 0 WHERE seq = ?4",
                        params![dlq, serde_json::to_string(&attributes).unwrap(), now, seq],
                    )
                    .map_err(storage_error("ReceiveMessage"))?;
                    continue;
                }
            }
            let receipt = random_id();
            tx.execute(
                "UPDATE messages SET receive_count = receive_count + 1, receipt = ?1, visible_at = ?2, in_flight = 1 WHERE seq = ?3",
                params![receipt, now + visibility_secs * 1000, seq],
            )
            .map_err(storage_error("ReceiveMessage"))?;
            received.push(LocalMessage {
                id,
                body,
                attributes,
                receipt,
                receive_count: receive_count + 1,
                sent_at_ms: sent_at,
            });
        }
        tx.commit().map_err(storage_error("ReceiveMessage"))?;
        Ok(received)
    }

    /// Deletes a received message; a stale receipt (the message was redelivered since) is a no-op, as on SQS.
    pub fn delete(&self, receipt: &str) -> Result<(), PortError> {
        self.db
            .lock()
            .execute("DELETE FROM messages WHERE receipt = ?1", [receipt])
            .map_err(storage_error("DeleteMessage"))?;
        Ok(())
    }

    pub fn change_visibility(&self, receipt: &str, secs: u32) -> Result<(), PortError> {
        let changed = self
            .db
            .lock()
            .execute(
                "UPDATE messages SET visible_at = ?1, in_flight = 0 WHERE receipt = ?2",
                params![now_ms() + i64::from(secs) * 1000, receipt],
            )
            .map_err(storage_error("ChangeMessageVisibility"))?;
        if changed == 0 {
            return Err(PortError::new(
                PortErrorKind::InvalidRequest,
                "local-queue",
                "ChangeMessageVisibility",
            ));
        }
        Ok(())
    }

    /// Makes every message a previous run had received but not finished visible again:
    /// what a restart after Ctrl-C or a crash does, instead of waiting for visibility timeouts.
    pub fn release_in_flight(&self) -> rusqlite::Result<usize> {
        self.db.lock().execute("UPDATE messages SET visible_at = ?1, in_flight = 0, receipt = NULL WHERE in_flight = 1", [now_ms()])
    }

    pub fn depth(&self, queue: &str) -> rusqlite::Result<QueueDepth> {
        let now = now_ms();
        self.db.lock().query_row(
            "SELECT
                COALESCE(SUM(visible_at <= ?2), 0),
                COALESCE(SUM(visible_at > ?2 AND in_flight = 1), 0),
                COALESCE(SUM(visible_at > ?2 AND in_flight = 0), 0),
                MIN(sent_at)
             FROM messages WHERE queue = ?1",
            params![queue, now],
            |r| {
                let count = |i| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
                Ok(QueueDepth {
                    visible: count(0)?,
                    in_flight: count(1)?,
                    delayed: count(2)?,
                    oldest_sent_ms: r.get(3)?,
                })
            },
        )
    }

    pub fn queue_names(&self) -> rusqlite::Result<Vec<String>> {
        let connection = self.db.lock();
        let mut statement = connection.prepare("SELECT name FROM queues ORDER BY name")?;
        let names = statement.query_map([], |r| r.get(0))?.collect();
        names
    }

    /// Every message on `queue` without receiving it (for status and dead-letter listings).
    pub fn peek(&self, queue: &str) -> rusqlite::Result<Vec<LocalMessage>> {
        let connection = self.db.lock();
        let mut statement = connection.prepare(
            "SELECT id, body, attributes, COALESCE(receipt, ''), receive_count, sent_at FROM messages WHERE queue = ?1 ORDER BY seq",
        )?;
        let messages = statement
            .query_map([queue], |r| {
                let attributes: String = r.get(2)?;
                Ok(LocalMessage {
                    id: r.get(0)?,
                    body: r.get(1)?,
                    attributes: serde_json::from_str(&attributes).unwrap_or_default(),
                    receipt: r.get(3)?,
                    receive_count: r.get(4)?,
                    sent_at_ms: r.get(5)?,
                })
            })?
            .collect();
        messages
    }

    /// The `MessageQueue` port for consumers of `queue`.
    pub fn port(&self, queue: &str, dead_letter_queue: &str) -> LocalQueue {
        LocalQueue {
            queues: self.clone(),
            dead_letter_queue: dead_letter_queue.to_owned(),
            _queue: queue.to_owned(),
        }
    }
}

/// `MessageQueue` for one consumer: dead letters go to its DLQ with their reason.
#[derive(Clone)]
pub struct LocalQueue {
    queues: Queues,
    dead_letter_queue: String,
    _queue: String,
}

impl MessageQueue for LocalQueue {
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), PortError> {
        self.queues
            .send(
                &self.dead_letter_queue,
                &letter.body,
                &letter.attributes(),
                0,
            )
            .map(|_| ())
    }

    async fn retry_later(&self, receipt_handle: &str, delay_secs: u32) -> Result<(), PortError> {
        self.queues.change_visibility(receipt_handle, delay_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues() -> Queues {
        let queues = Queues::new(Db::in_memory().unwrap());
        for (name, dlq) in [("work", Some("work-dlq")), ("work-dlq", None)] {
            queues
                .declare(&QueueSpec {
                    name: name.into(),
                    visibility_secs: 30,
                    max_receives: 3,
                    dead_letter_queue: dlq.map(Into::into),
                })
                .unwrap();
        }
        queues
    }

    #[test]
    fn send_receive_delete() {
        let q = queues();
        q.send("work", "a", &BTreeMap::new(), 0).unwrap();
        let got = q.receive("work", 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].body.as_str(), got[0].receive_count), ("a", 1));
        assert!(
            q.receive("work", 10).unwrap().is_empty(),
            "hidden while in flight"
        );
        q.delete(&got[0].receipt).unwrap();
        assert_eq!(q.depth("work").unwrap(), QueueDepth::default());
    }

    #[test]
    fn visibility_expiry_redelivers_and_counts() {
        let q = queues();
        q.send("work", "a", &BTreeMap::new(), 0).unwrap();
        let first = q.receive("work", 1).unwrap().remove(0);
        q.change_visibility(&first.receipt, 0).unwrap();
        let second = q.receive("work", 1).unwrap().remove(0);
        assert_eq!(second.receive_count, 2);
        q.delete(&first.receipt).unwrap();
        assert_eq!(
            q.depth("work").unwrap().in_flight,
            1,
            "a stale receipt deletes nothing"
        );
    }

    #[test]
    fn delayed_messages_wait() {
        let q = queues();
        q.send("work", "later", &BTreeMap::new(), 60).unwrap();
        assert!(q.receive("work", 1).unwrap().is_empty());
        assert_eq!(q.depth("work").unwrap().delayed, 1);
    }

    #[test]
    fn redrive_moves_to_the_dead_letter_queue_after_max_receives() {
        let q = queues();
        q.send(
            "work",
            "poison",
            &BTreeMap::from([("k".into(), "v".into())]),
            0,
        )
        .unwrap();
        for _ in 0..3 {
            let m = q.receive("work", 1).unwrap().remove(0);
            q.change_visibility(&m.receipt, 0).unwrap();
        }
        assert!(q.receive("work", 1).unwrap().is_empty());
        let dead = q.receive("work-dlq", 1).unwrap();
        assert_eq!(dead[0].body, "poison");
        assert_eq!(
            dead[0].attributes["telepipe.reason"],
            "max_receives_exceeded"
        );
        assert_eq!(dead[0].attributes["k"], "v");
    }

    #[test]
    fn release_in_flight_redelivers_after_a_restart() {
        let q = queues();
        q.send("work", "a", &BTreeMap::new(), 0).unwrap();
        let m = q.receive("work", 1).unwrap().remove(0);
        assert_eq!(q.release_in_flight().unwrap(), 1);
        let again = q.receive("work", 1).unwrap().remove(0);
        assert_eq!(again.id, m.id);
        assert_eq!(again.receive_count, 2);
    }

    #[tokio::test]
    async fn dead_letters_carry_their_reason() {
        let q = queues();
        let port = q.port("work", "work-dlq");
        let letter = DeadLetter {
            body: "b".into(),
            source_message_id: "m".into(),
            stage: "intake",
            error_class: "permanent",
            reason: "format_mismatch".into(),
            context: "session=s".into(),
            receive_count: 1,
            attributes: BTreeMap::new(),
        };
        port.dead_letter(&letter).await.unwrap();
        let dead = q.peek("work-dlq").unwrap();
        assert_eq!(dead[0].attributes["telepipe.reason"], "format_mismatch");
        assert_eq!(dead[0].attributes["telepipe.stage"], "intake");
    }
}

//! The dead-letter tooling's port (`telepipe_ops::port::DlqAdmin`) over this runtime's
//! SQLite queues: dead-letter queues are the queues named `*-dlq`, and a queue's source
//! follows the same naming convention (`intake-dlq` → `intake`).

use crate::db::{now_ms, Db};
use crate::queue::{LocalMessage, Queues};
use std::path::Path;
use std::time::Duration;
use telepipe_ops::port::{conventional_source, DlqAdmin, DlqInfo, DlqMessage, Outgoing};
use telepipe_workers::error::{PortError, PortErrorKind};

#[derive(Clone)]
pub struct LocalDlqAdmin {
    queues: Queues,
}

fn storage_error(operation: &'static str) -> impl Fn(rusqlite::Error) -> PortError {
    move |_| PortError::new(PortErrorKind::Unavailable, "local-queue", operation)
}

fn message(local: LocalMessage) -> DlqMessage {
    DlqMessage {
        id: local.id,
        receipt: local.receipt,
        body: local.body,
        attributes: local.attributes,
        has_binary_attributes: false,
        receive_count: local.receive_count,
        sent_at_ms: Some(local.sent_at_ms),
        group_id: None,
        dedup_id: None,
    }
}

impl LocalDlqAdmin {
    pub fn new(queues: Queues) -> Self {
        Self { queues }
    }

    /// Opens `DATA_DIR/telepipe.db` of an existing data directory.
    pub fn open(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join("telepipe.db");
        if !path.exists() {
            return Err(format!(
                "{} holds no telepipe data (no telepipe.db)",
                data_dir.display()
            ));
        }
        let db = Db::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self::new(Queues::new(db)))
    }

    fn info(&self, name: &str, names: &[String]) -> Result<DlqInfo, PortError> {
        let depth = self
            .queues
            .depth(name)
            .map_err(storage_error("GetQueueAttributes"))?;
        Ok(DlqInfo {
            name: name.to_owned(),
            queue: name.to_owned(),
            depth: depth.visible + depth.in_flight + depth.delayed,
            // A received message whose visibility was changed counts as delayed locally;
            // on a dead-letter queue (sent without delay) both mean "received, hidden".
            in_flight: depth.in_flight + depth.delayed,
            oldest_age: depth
                .oldest_sent_ms
                .map(|sent| Duration::from_millis((now_ms() - sent).max(0) as u64)),
            source: conventional_source(name).filter(|source| names.contains(source)),
            fifo: false,
        })
    }

    fn names(&self) -> Result<Vec<String>, PortError> {
        self.queues
            .queue_names()
            .map_err(storage_error("ListQueues"))
    }
}

impl DlqAdmin for LocalDlqAdmin {
    async fn list(&self) -> Result<Vec<DlqInfo>, PortError> {
        let names = self.names()?;
        names
            .iter()
            .filter(|name| name.ends_with("-dlq"))
            .map(|name| self.info(name, &names))
            .collect()
    }

    async fn find(&self, queue: &str) -> Result<DlqInfo, PortError> {
        let names = self.names()?;
        if !names.iter().any(|name| name == queue) {
            return Err(PortError::new(
                PortErrorKind::NotFound,
                "local-queue",
                "GetQueueUrl",
            ));
        }
        self.info(queue, &names)
    }

    async fn peek(&self, queue: &str, max: usize) -> Result<Vec<DlqMessage>, PortError> {
        let messages = self
            .queues
            .peek(queue)
            .map_err(storage_error("ReceiveMessage"))?;
        Ok(messages.into_iter().take(max).map(message).collect())
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility_secs: u32,
    ) -> Result<Vec<DlqMessage>, PortError> {
        let received = self.queues.receive(queue, max)?;
        // The queue's own visibility timeout applies on receive; the replay asks for its own.
        for local in &received {
            self.queues
                .change_visibility(&local.receipt, visibility_secs)?;
        }
        Ok(received.into_iter().map(message).collect())
    }

    async fn send(&self, queue: &str, message: &Outgoing) -> Result<String, PortError> {
        self.queues
            .send(queue, &message.body, &message.attributes, 0)
    }

    async fn delete(&self, _queue: &str, receipt: &str) -> Result<(), PortError> {
        self.queues.delete(receipt)
    }

    async fn release(&self, _queue: &str, receipt: &str) -> Result<(), PortError> {
        self.queues.change_visibility(receipt, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueSpec;
    use std::collections::BTreeMap;
    use telepipe_ops::journal::MemoryJournal;
    use telepipe_ops::replay::{replay, ReplayOptions};

    #[tokio::test]
    async fn replays_local_dead_letters_to_their_source() {
        let queues = Queues::new(Db::in_memory().unwrap());
        for (name, dlq) in [("intake", Some("intake-dlq")), ("intake-dlq", None)] {
            queues
                .declare(&QueueSpec {
                    name: name.into(),
                    visibility_secs: 30,
                    max_receives: 8,
                    dead_letter_queue: dlq.map(Into::into),
                })
                .unwrap();
        }
        let attributes = BTreeMap::from([
            ("telepipe.stage".to_owned(), "intake".to_owned()),
            ("telepipe.reason".to_owned(), "throttled".to_owned()),
        ]);
        for body in ["a", "b"] {
            queues.send("intake-dlq", body, &attributes, 0).unwrap();
        }
        let admin = LocalDlqAdmin::new(queues.clone());
        let listed = admin.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].depth, listed[0].source.as_deref()),
            (2, Some("intake"))
        );
        let mut journal = MemoryJournal::default();
        let options = ReplayOptions::new("intake-dlq", "intake-dlq", "intake", now_ms());
        let report = replay(&admin, &mut journal, &options, &mut |_| {})
            .await
            .unwrap();
        assert_eq!((report.sent, report.deleted), (2, 2));
        assert!(queues.peek("intake-dlq").unwrap().is_empty());
        let moved = queues.peek("intake").unwrap();
        assert_eq!(moved.len(), 2);
        assert_eq!(moved[0].attributes["telepipe.stage"], "intake");
        assert_eq!(moved[0].attributes["telepipe.replayed-from"], "intake-dlq");
    }
}

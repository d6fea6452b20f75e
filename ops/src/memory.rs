//! `DlqAdmin` in memory, with SQS's visibility semantics, for unit tests; and
//! `Faulty`, a wrapper over any adapter that fails sends or deletes after a count, to
//! simulate a replay interrupted half-way.

use crate::port::{conventional_source, DlqAdmin, DlqInfo, DlqMessage, Outgoing};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use telepipe_workers::clock::now_ms;
use telepipe_workers::error::{PortError, PortErrorKind};

#[derive(Debug, Clone)]
struct Stored {
    message: DlqMessage,
    hidden_until: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    queues: BTreeMap<String, Vec<Stored>>,
    next_id: u64,
}

/// Queues in memory; queue names are their own ids.
#[derive(Default)]
pub struct MemoryQueues {
    inner: Mutex<Inner>,
}

impl MemoryQueues {
    pub fn new(names: &[&str]) -> Self {
        let queues = Self::default();
        for name in names {
            queues
                .inner
                .lock()
                .unwrap()
                .queues
                .insert((*name).to_owned(), Vec::new());
        }
        queues
    }

    /// Adds a message as if another party had sent it `age` ago; returns its id.
    pub fn put(&self, queue: &str, outgoing: &Outgoing, age: Duration) -> String {
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        let id = format!("m{}", inner.next_id);
        let sent_at_ms = now_ms() - age.as_millis() as i64;
        inner
            .queues
            .get_mut(queue)
            .expect("queue declared")
            .push(Stored {
                message: DlqMessage {
                    id: id.clone(),
                    receipt: String::new(),
                    body: outgoing.body.clone(),
                    attributes: outgoing.attributes.clone(),
                    has_binary_attributes: false,
                    receive_count: 0,
                    sent_at_ms: Some(sent_at_ms),
                    group_id: outgoing.group_id.clone(),
                    dedup_id: outgoing.dedup_id.clone(),
                },
                hidden_until: None,
            });
        id
    }

    /// Every message on `queue`, visible or not.
    pub fn all(&self, queue: &str) -> Vec<DlqMessage> {
        self.inner.lock().unwrap().queues[queue]
            .iter()
            .map(|s| s.message.clone())
            .collect()
    }

    /// Marks a stored message as carrying a binary attribute.
    pub fn set_binary(&self, queue: &str, id: &str) {
        let mut inner = self.inner.lock().unwrap();
        for stored in inner.queues.get_mut(queue).unwrap() {
            if stored.message.id == id {
                stored.message.has_binary_attributes = true;
            }
        }
    }

    fn info(name: &str, messages: &[Stored], names: &[String]) -> DlqInfo {
        let now = now_ms();
        DlqInfo {
            name: name.to_owned(),
            queue: name.to_owned(),
            depth: messages.len() as u64,
            in_flight: messages
                .iter()
                .filter(|s| s.hidden_until.is_some_and(|t| t > Instant::now()))
                .count() as u64,
            oldest_age: messages
                .iter()
                .filter_map(|s| s.message.sent_at_ms)
                .min()
                .map(|sent| Duration::from_millis((now - sent).max(0) as u64)),
            source: conventional_source(name).filter(|s| names.contains(s)),
            fifo: name.ends_with(".fifo"),
        }
    }
}

fn not_found(operation: &'static str) -> PortError {
    PortError::new(PortErrorKind::NotFound, "memory-queue", operation)
        .with_code("QueueDoesNotExist")
        .with_status(400)
}

impl DlqAdmin for MemoryQueues {
    async fn list(&self) -> Result<Vec<DlqInfo>, PortError> {
        let inner = self.inner.lock().unwrap();
        let names: Vec<String> = inner.queues.keys().cloned().collect();
        Ok(inner
            .queues
            .iter()
            .filter(|(name, _)| conventional_source(name).is_some())
            .map(|(name, messages)| Self::info(name, messages, &names))
            .collect())
    }

    async fn find(&self, queue: &str) -> Result<DlqInfo, PortError> {
        let inner = self.inner.lock().unwrap();
        let names: Vec<String> = inner.queues.keys().cloned().collect();
        let messages = inner.queues.get(queue).ok_or(not_found("GetQueueUrl"))?;
        Ok(Self::info(queue, messages, &names))
    }

    async fn peek(&self, queue: &str, max: usize) -> Result<Vec<DlqMessage>, PortError> {
        let inner = self.inner.lock().unwrap();
        let messages = inner.queues.get(queue).ok_or(not_found("ReceiveMessage"))?;
        Ok(messages
            .iter()
            .take(max)
            .map(|s| s.message.clone())
            .collect())
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility_secs: u32,
    ) -> Result<Vec<DlqMessage>, PortError> {
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        let round = inner.next_id;
        let messages = inner
            .queues
            .get_mut(queue)
            .ok_or(not_found("ReceiveMessage"))?;
        let now = Instant::now();
        let mut received = Vec::new();
        for (index, stored) in messages.iter_mut().enumerate() {
            if received.len() == max {
                break;
            }
            if stored.hidden_until.is_some_and(|t| t > now) {
                continue;
            }
            stored.hidden_until = Some(now + Duration::from_secs(u64::from(visibility_secs)));
            stored.message.receive_count += 1;
            stored.message.receipt = format!("r{round}-{index}-{}", stored.message.id);
            received.push(stored.message.clone());
        }
        Ok(received)
    }

    async fn send(&self, queue: &str, message: &Outgoing) -> Result<String, PortError> {
        if !self.inner.lock().unwrap().queues.contains_key(queue) {
            return Err(not_found("SendMessage"));
        }
        Ok(self.put(queue, message, Duration::ZERO))
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), PortError> {
        let mut inner = self.inner.lock().unwrap();
        let messages = inner
            .queues
            .get_mut(queue)
            .ok_or(not_found("DeleteMessage"))?;
        // A stale receipt deletes nothing, as on SQS.
        messages.retain(|s| s.message.receipt != receipt);
        Ok(())
    }

    async fn release(&self, queue: &str, receipt: &str) -> Result<(), PortError> {
        let mut inner = self.inner.lock().unwrap();
        let messages = inner
            .queues
            .get_mut(queue)
            .ok_or(not_found("ChangeMessageVisibility"))?;
        for stored in messages.iter_mut() {
            if stored.message.receipt == receipt {
                stored.hidden_until = None;
            }
        }
        Ok(())
    }
}

/// Which call `Faulty` breaks, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Sends after the first `n` fail with no answer (the message may or may not be sent:
    /// here it is not).
    SendTimeoutAfter(usize),
    /// Sends after the first `n` reach the target, then the answer is lost (a timeout).
    SendLostAnswerAfter(usize),
    /// Deletes after the first `n` fail (the run is interrupted between send and delete).
    DeleteFailsAfter(usize),
}

/// Any adapter with one injected fault.
pub struct Faulty<A> {
    pub inner: A,
    pub fault: Fault,
    sends: AtomicUsize,
    deletes: AtomicUsize,
}

impl<A> Faulty<A> {
    pub fn new(inner: A, fault: Fault) -> Self {
        Self {
            inner,
            fault,
            sends: AtomicUsize::new(0),
            deletes: AtomicUsize::new(0),
        }
    }
}

impl<A: DlqAdmin> DlqAdmin for Faulty<A> {
    async fn list(&self) -> Result<Vec<DlqInfo>, PortError> {
        self.inner.list().await
    }

    async fn find(&self, queue: &str) -> Result<DlqInfo, PortError> {
        self.inner.find(queue).await
    }

    async fn peek(&self, queue: &str, max: usize) -> Result<Vec<DlqMessage>, PortError> {
        self.inner.peek(queue, max).await
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility_secs: u32,
    ) -> Result<Vec<DlqMessage>, PortError> {
        self.inner.receive(queue, max, visibility_secs).await
    }

    async fn send(&self, queue: &str, message: &Outgoing) -> Result<String, PortError> {
        let n = self.sends.fetch_add(1, Ordering::SeqCst);
        let timeout = PortError::new(PortErrorKind::Timeout, "injected", "SendMessage");
        match self.fault {
            Fault::SendTimeoutAfter(limit) if n >= limit => Err(timeout),
            Fault::SendLostAnswerAfter(limit) if n >= limit => {
                self.inner.send(queue, message).await?;
                Err(timeout)
            }
            _ => self.inner.send(queue, message).await,
        }
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), PortError> {
        let n = self.deletes.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::DeleteFailsAfter(limit) if n >= limit => Err(PortError::new(
                PortErrorKind::Unavailable,
                "injected",
                "DeleteMessage",
            )),
            _ => self.inner.delete(queue, receipt).await,
        }
    }

    async fn release(&self, queue: &str, receipt: &str) -> Result<(), PortError> {
        self.inner.release(queue, receipt).await
    }
}

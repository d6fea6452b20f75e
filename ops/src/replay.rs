//! Replaying dead letters to their source queue: one plain async function over the
//! `DlqAdmin` port, a `Journal` and a progress callback.
//!
//! Per matching message (move): journal `intent` → send a copy (body, attributes, FIFO
//! group and deduplication ids) → journal `sent` → delete the original → journal
//! `deleted`. Copy stops after `sent` and leaves the original in place.
//!
//! Interruption: a re-run reads the journal first. A message already `sent` is not sent
//! again (move: its original is deleted; copy: skipped). A message with an `intent` and
//! no outcome may or may not have reached the target: it is left on the dead-letter queue
//! and reported *uncertain* unless `force` is set. This errs on the side of no duplicates
//! and loses nothing: the original is only ever deleted after its copy is recorded sent.
//!
//! Messages not taken (filtered out, uncertain, copies, dry run) stay hidden while the run
//! scans, so each is looked at once, and are made visible again when it ends.

use crate::journal::{Entry, Journal, State};
use crate::message::{summarize, DeadLetterInfo, Filter};
use crate::port::{DlqAdmin, DlqMessage, Outgoing};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;
use telepipe_workers::error::PortError;

/// Attribute naming the dead-letter queue a replayed message came from.
pub const ATTR_REPLAYED_FROM: &str = "telepipe.replayed-from";
/// Attribute counting how many times a message was replayed.
pub const ATTR_REPLAY_COUNT: &str = "telepipe.replay-count";
/// SQS's limit of message attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send to the target, then delete from the dead-letter queue.
    Move,
    /// Send to the target and keep the original.
    Copy,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Move => "move",
            Self::Copy => "copy",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The dead-letter queue (port form) and its display name.
    pub dlq: String,
    pub dlq_name: String,
    /// The queue to send to (port form).
    pub target: String,
    pub filter: Filter,
    pub mode: Mode,
    pub dry_run: bool,
    /// Messages sent per second at most.
    pub rate: Option<f64>,
    /// Messages sent (or listed by a dry run) at most.
    pub max: Option<usize>,
    /// Resend messages whose earlier send is uncertain.
    pub force: bool,
    /// How long received messages stay hidden while the run works.
    pub visibility_secs: u32,
    /// Receives in a row that bring nothing new before the queue counts as scanned.
    pub idle_receives: u32,
    /// The clock ages are measured against (ms since the epoch).
    pub now_ms: i64,
}

impl ReplayOptions {
    pub fn new(dlq: &str, dlq_name: &str, target: &str, now_ms: i64) -> Self {
        Self {
            dlq: dlq.to_owned(),
            dlq_name: dlq_name.to_owned(),
            target: target.to_owned(),
            filter: Filter::default(),
            mode: Mode::Move,
            dry_run: false,
            rate: None,
            max: None,
            force: false,
            visibility_secs: 300,
            idle_receives: 2,
            now_ms,
        }
    }
}

/// What a dry run would send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub message_id: String,
    pub reason: String,
    pub stage: Option<String>,
    pub session_ids: Vec<String>,
    pub bytes: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Distinct messages looked at.
    pub scanned: usize,
    pub matched: usize,
    /// Copies sent to the target by this run.
    pub sent: usize,
    /// Originals deleted by this run (moves, including those completed from the journal).
    pub deleted: usize,
    /// Sent by an earlier run: copy skipped, or (move) original deleted without resending.
    pub already_sent: usize,
    /// Ids with an unfinished earlier send: left in place (see `--force`).
    pub uncertain: Vec<String>,
    /// Ids carrying binary attributes, which this tool cannot carry over.
    pub unsupported: Vec<String>,
    /// Dry run: what would be sent.
    pub planned: Vec<Planned>,
}

#[derive(Debug)]
pub enum ReplayError {
    Port(PortError),
    Journal(std::io::Error),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Port(e) => write!(
                f,
                "{e} ({}: {})",
                e.class().as_str(),
                match e.class() {
                    telepipe_workers::error::ErrorClass::Retryable =>
                        "re-run the same command; the journal makes that safe",
                    telepipe_workers::error::ErrorClass::Permanent =>
                        "check the queue names and the IAM permissions in ops/README.md, then re-run",
                }
            ),
            Self::Journal(e) => write!(
                f,
                "journal write failed: {e} (permanent until fixed: free disk space or choose --journal, then re-run)"
            ),
        }
    }
}

impl std::error::Error for ReplayError {}

/// A replay stopped by an error, with what it had done until then.
#[derive(Debug)]
pub struct ReplayFailure {
    pub error: ReplayError,
    pub report: ReplayReport,
}

/// Paces sends to at most `rate` per second.
struct Pacer {
    interval: Option<Duration>,
    next: Option<tokio::time::Instant>,
}

impl Pacer {
    fn new(rate: Option<f64>) -> Self {
        Self {
            interval: rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            next: None,
        }
    }

    async fn wait(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = tokio::time::Instant::now();
        if let Some(next) = self.next.filter(|n| *n > now) {
            tokio::time::sleep_until(next).await;
        }
        self.next = Some(self.next.map_or(now, |n| n.max(now)) + interval);
    }
}

/// The message to send: everything kept, plus the replay marks when SQS's attribute
/// limit leaves room for them.
pub fn outgoing(message: &DlqMessage, dlq_name: &str) -> Outgoing {
    let mut attributes = message.attributes.clone();
    let count = attributes
        .get(ATTR_REPLAY_COUNT)
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    if attributes.contains_key(ATTR_REPLAY_COUNT) || attributes.len() < MAX_ATTRIBUTES {
        attributes.insert(ATTR_REPLAY_COUNT.to_owned(), count.to_string());
    }
    if attributes.contains_key(ATTR_REPLAYED_FROM) || attributes.len() < MAX_ATTRIBUTES {
        attributes.insert(ATTR_REPLAYED_FROM.to_owned(), dlq_name.to_owned());
    }
    Outgoing {
        body: message.body.clone(),
        attributes,
        group_id: message.group_id.clone(),
        dedup_id: message.dedup_id.clone(),
    }
}

struct Run<'a, A, J> {
    admin: &'a A,
    journal: &'a mut J,
    options: &'a ReplayOptions,
    report: ReplayReport,
    /// Receipts of messages held hidden until the end of the run.
    held: HashMap<String, String>,
}

impl<A: DlqAdmin, J: Journal> Run<'_, A, J> {
    fn entry(&self, message: &DlqMessage, state: State) -> Entry {
        let info = DeadLetterInfo::of(message);
        let summary = summarize(&message.body);
        Entry {
            at_ms: now_ms(),
            state,
            message_id: message.id.clone(),
            dlq: self.options.dlq_name.clone(),
            target: self.options.target.clone(),
            mode: self.options.mode.as_str().to_owned(),
            new_message_id: None,
            reason: Some(info.reason),
            stage: info.stage,
            session_ids: summary.session_ids,
            body_sha256: Some(summary.sha256),
            forced: false,
        }
    }

    fn max_reached(&self) -> bool {
        let taken = self.report.sent + self.report.planned.len();
        self.options.max.is_some_and(|max| taken >= max)
    }

    fn record(&mut self, entry: &Entry) -> Result<(), ReplayError> {
        self.journal.record(entry).map_err(ReplayError::Journal)
    }

    fn hold(&mut self, message: &DlqMessage) {
        self.held
            .insert(message.id.clone(), message.receipt.clone());
    }

    async fn delete(&mut self, message: &DlqMessage) -> Result<(), ReplayError> {
        self.admin
            .delete(&self.options.dlq, &message.receipt)
            .await
            .map_err(ReplayError::Port)?;
        self.held.remove(&message.id);
        self.record(&self.entry(message, State::Deleted))?;
        self.report.deleted += 1;
        Ok(())
    }

    async fn send(
        &mut self,
        message: &DlqMessage,
        forced: bool,
        pacer: &mut Pacer,
    ) -> Result<(), ReplayError> {
        pacer.wait().await;
        let mut intent = self.entry(message, State::Intent);
        intent.forced = forced;
        self.record(&intent)?;
        let outgoing = outgoing(message, &self.options.dlq_name);
        match self.admin.send(&self.options.target, &outgoing).await {
            Ok(new_id) => {
                let mut sent = self.entry(message, State::Sent);
                sent.new_message_id = Some(new_id);
                self.record(&sent)?;
                self.report.sent += 1;
            }
            Err(error) => {
                // A 4xx answer means the service refused the request: nothing was sent, so
                // the intent is withdrawn. Without an answer (timeout, 5xx) it stays
                // uncertain for the next run to report.
                if error.status.is_some_and(|s| (400..500).contains(&s)) {
                    self.record(&self.entry(message, State::Aborted))?;
                }
                return Err(ReplayError::Port(error));
            }
        }
        match self.options.mode {
            Mode::Move => self.delete(message).await,
            Mode::Copy => Ok(()),
        }
    }

    async fn handle(
        &mut self,
        message: DlqMessage,
        states: &HashMap<String, State>,
        pacer: &mut Pacer,
    ) -> Result<(), ReplayError> {
        if !self.options.filter.matches(&message, self.options.now_ms) {
            return Ok(());
        }
        let state = states.get(&message.id).copied();
        let fresh = matches!(state, None | Some(State::Aborted));
        if fresh && self.max_reached() {
            return Ok(());
        }
        self.report.matched += 1;
        if message.has_binary_attributes {
            self.report.unsupported.push(message.id.clone());
            return Ok(());
        }
        match state {
            Some(State::Sent | State::Deleted) => {
                self.report.already_sent += 1;
                if self.options.mode == Mode::Move && !self.options.dry_run {
                    self.delete(&message).await?;
                }
                Ok(())
            }
            Some(State::Intent) if !self.options.force => {
                self.report.uncertain.push(message.id.clone());
                Ok(())
            }
            _ if self.options.dry_run => {
                let info = DeadLetterInfo::of(&message);
                let summary = summarize(&message.body);
                self.report.planned.push(Planned {
                    message_id: message.id.clone(),
                    reason: info.reason,
                    stage: info.stage,
                    session_ids: summary.session_ids,
                    bytes: summary.bytes,
                });
                Ok(())
            }
            _ => {
                let forced = state == Some(State::Intent);
                self.send(&message, forced, pacer).await
            }
        }
    }

    async fn release_held(&mut self) {
        // Best effort: a message not released reappears when its visibility timeout ends.
        for (_, receipt) in std::mem::take(&mut self.held) {
            let _ = self.admin.release(&self.options.dlq, &receipt).await;
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Replays the dead letters of `options.dlq` that pass its filter. `progress` is called
/// after each message with the counts so far.
pub async fn replay<A: DlqAdmin, J: Journal>(
    admin: &A,
    journal: &mut J,
    options: &ReplayOptions,
    progress: &mut (dyn FnMut(&ReplayReport) + Send),
) -> Result<ReplayReport, ReplayFailure> {
    let states = match journal.states() {
        Ok(states) => states,
        Err(error) => {
            return Err(ReplayFailure {
                error: ReplayError::Journal(error),
                report: ReplayReport::default(),
            })
        }
    };
    let mut run = Run {
        admin,
        journal,
        options,
        report: ReplayReport::default(),
        held: HashMap::new(),
    };
    let mut pacer = Pacer::new(options.rate);
    let mut seen = HashSet::new();
    let mut idle = 0;
    let outcome: Result<(), ReplayError> = async {
        while idle < options.idle_receives && !run.max_reached() {
            let batch = admin
                .receive(&options.dlq, 10, options.visibility_secs)
                .await
                .map_err(ReplayError::Port)?;
            let mut fresh = Vec::new();
            for message in batch {
                if seen.insert(message.id.clone()) {
                    fresh.push(message);
                } else if run.held.contains_key(&message.id) {
                    // Seen earlier in this run and back after its visibility timeout: hold
                    // it again under its new receipt.
                    run.hold(&message);
                }
            }
            // The whole batch is held before any is handled, so if the run stops half-way
            // the rest are released too rather than hidden until their timeout.
            for message in &fresh {
                run.hold(message);
            }
            idle = if fresh.is_empty() { idle + 1 } else { 0 };
            for message in fresh {
                run.report.scanned += 1;
                run.handle(message, &states, &mut pacer).await?;
                progress(&run.report);
            }
        }
        Ok(())
    }
    .await;
    run.release_held().await;
    match outcome {
        Ok(()) => Ok(run.report),
        Err(error) => Err(ReplayFailure {
            error,
            report: run.report,
        }),
    }
}

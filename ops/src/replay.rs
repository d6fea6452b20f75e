//! Replaying dead letters to their source queue: one plain async function over the
//! `DlqAdmin` port, a `Journal` and a progress callback.
//!
//! Per matching message (move): journal `intent` → send a copy (body, attributes, FIFO
//! group and deduplication ids) → journal `sent` → delete the original → journal
//! `deleted`. Copy stops after `sent` and leaves the original in place. Each step is taken
//! for up to 10 messages at once (one journal sync, one `SendMessageBatch`, one
//! `DeleteMessageBatch`): per-message calls cost a round trip each.
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
use telepipe_workers::clock::now_ms;
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

/// What one received batch asks for, decided before any side effect.
#[derive(Default)]
struct Plan {
    /// To send, and whether `--force` resends an uncertain one.
    send: Vec<(DlqMessage, bool)>,
    /// Sent by an earlier run: only the original's delete is left (move).
    delete: Vec<DlqMessage>,
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

    fn taken(&self, pending: usize) -> usize {
        self.report.sent + self.report.planned.len() + pending
    }

    fn max_reached(&self) -> bool {
        self.options.max.is_some_and(|max| self.taken(0) >= max)
    }

    fn record_all(&mut self, entries: &[Entry]) -> Result<(), ReplayError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.journal
            .record_all(entries)
            .map_err(ReplayError::Journal)
    }

    fn hold(&mut self, message: &DlqMessage) {
        self.held
            .insert(message.id.clone(), message.receipt.clone());
    }

    /// Sorts one message into the plan (or the report) by filter, journal state and options.
    fn decide(&mut self, message: DlqMessage, states: &HashMap<String, State>, plan: &mut Plan) {
        if !self.options.filter.matches(&message, self.options.now_ms) {
            return;
        }
        let state = states.get(&message.id).copied();
        let fresh = matches!(state, None | Some(State::Aborted));
        if fresh
            && self
                .options
                .max
                .is_some_and(|max| self.taken(plan.send.len()) >= max)
        {
            return;
        }
        self.report.matched += 1;
        if message.has_binary_attributes {
            self.report.unsupported.push(message.id);
            return;
        }
        match state {
            Some(State::Sent | State::Deleted) => {
                self.report.already_sent += 1;
                if self.options.mode == Mode::Move && !self.options.dry_run {
                    plan.delete.push(message);
                }
            }
            Some(State::Intent) if !self.options.force => self.report.uncertain.push(message.id),
            _ if self.options.dry_run => {
                let info = DeadLetterInfo::of(&message);
                let summary = summarize(&message.body);
                self.report.planned.push(Planned {
                    message_id: message.id,
                    reason: info.reason,
                    stage: info.stage,
                    session_ids: summary.session_ids,
                    bytes: summary.bytes,
                });
            }
            _ => {
                let forced = state == Some(State::Intent);
                plan.send.push((message, forced));
            }
        }
    }

    /// Journals the intents, sends, journals the outcomes; returns the messages sent and
    /// the first error. Entries the service refused (4xx) or never tried are journaled
    /// `aborted`; those without an answer keep their `intent`.
    async fn send(
        &mut self,
        batch: Vec<(DlqMessage, bool)>,
        pacer: &mut Pacer,
    ) -> Result<(Vec<DlqMessage>, Option<ReplayError>), ReplayError> {
        for _ in &batch {
            pacer.wait().await;
        }
        let intents: Vec<Entry> = batch
            .iter()
            .map(|(message, forced)| Entry {
                forced: *forced,
                ..self.entry(message, State::Intent)
            })
            .collect();
        self.record_all(&intents)?;
        let outgoing: Vec<Outgoing> = batch
            .iter()
            .map(|(message, _)| outgoing(message, &self.options.dlq_name))
            .collect();
        let results = self.admin.send_batch(&self.options.target, &outgoing).await;
        let mut outcomes = Vec::new();
        let mut sent = Vec::new();
        let mut first_error = None;
        for (index, (message, _)) in batch.into_iter().enumerate() {
            match results.get(index) {
                Some(Ok(new_id)) => {
                    let mut entry = self.entry(&message, State::Sent);
                    entry.new_message_id = Some(new_id.clone());
                    outcomes.push(entry);
                    sent.push(message);
                }
                Some(Err(error)) => {
                    if error.status.is_some_and(|s| (400..500).contains(&s)) {
                        outcomes.push(self.entry(&message, State::Aborted));
                    }
                    first_error.get_or_insert_with(|| ReplayError::Port(error.clone()));
                }
                None => outcomes.push(self.entry(&message, State::Aborted)),
            }
        }
        // Only once `sent` is durable may an original be deleted.
        self.record_all(&outcomes)?;
        self.report.sent += sent.len();
        Ok((sent, first_error))
    }

    async fn delete(&mut self, messages: Vec<DlqMessage>) -> Result<(), ReplayError> {
        if messages.is_empty() {
            return Ok(());
        }
        let receipts: Vec<String> = messages.iter().map(|m| m.receipt.clone()).collect();
        let results = self.admin.delete_batch(&self.options.dlq, &receipts).await;
        let mut deleted = Vec::new();
        let mut first_error = None;
        for (index, message) in messages.iter().enumerate() {
            match results.get(index) {
                Some(Ok(())) => {
                    self.held.remove(&message.id);
                    deleted.push(self.entry(message, State::Deleted));
                }
                Some(Err(error)) => {
                    first_error.get_or_insert_with(|| error.clone());
                }
                None => {}
            }
        }
        self.report.deleted += deleted.len();
        // `deleted` only completes the audit: were it lost, a re-run finds no message to act on.
        self.record_all(&deleted)?;
        first_error.map_or(Ok(()), |e| Err(ReplayError::Port(e)))
    }

    /// Carries out a plan: sends in slices the rate allows, deletes what was sent (move)
    /// and what earlier runs had sent.
    async fn execute(&mut self, plan: Plan, pacer: &mut Pacer) -> Result<(), ReplayError> {
        let slice = self
            .options
            .rate
            .map_or(10, |rate| (rate.floor() as usize).clamp(1, 10));
        let mut deletes = plan.delete;
        let mut sends = plan.send.into_iter().peekable();
        let mut stopped = None;
        while sends.peek().is_some() {
            let batch: Vec<_> = sends.by_ref().take(slice).collect();
            let (sent, error) = self.send(batch, pacer).await?;
            if self.options.mode == Mode::Move {
                deletes.extend(sent);
            }
            if error.is_some() {
                stopped = error;
                break;
            }
        }
        // Deletes run even after a failed send: what was sent is finished before stopping.
        self.delete(deletes).await?;
        stopped.map_or(Ok(()), Err)
    }

    async fn release_held(&mut self) {
        // Best effort: a message not released reappears when its visibility timeout ends.
        let receipts: Vec<String> = std::mem::take(&mut self.held).into_values().collect();
        self.admin.release_batch(&self.options.dlq, &receipts).await;
    }
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
            run.report.scanned += fresh.len();
            let mut plan = Plan::default();
            for message in fresh {
                run.decide(message, &states, &mut plan);
            }
            run.execute(plan, &mut pacer).await?;
            progress(&run.report);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn message(attributes: &[(&str, &str)]) -> DlqMessage {
        DlqMessage {
            id: "m".into(),
            receipt: "r".into(),
            body: "b".into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            has_binary_attributes: false,
            receive_count: 1,
            sent_at_ms: None,
            group_id: Some("g".into()),
            dedup_id: None,
        }
    }

    #[test]
    fn replay_marks_count_up_and_respect_the_attribute_limit() {
        let again = outgoing(&message(&[(ATTR_REPLAY_COUNT, "2"), ("a", "1")]), "q-dlq");
        assert_eq!(again.attributes[ATTR_REPLAY_COUNT], "3");
        assert_eq!(again.attributes[ATTR_REPLAYED_FROM], "q-dlq");
        assert_eq!(again.group_id.as_deref(), Some("g"));
        let nine: Vec<(String, String)> = (0..9).map(|i| (format!("a{i}"), "v".into())).collect();
        let nine: Vec<(&str, &str)> = nine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let crowded = outgoing(&message(&nine), "q-dlq");
        assert_eq!(crowded.attributes.len(), MAX_ATTRIBUTES);
        assert!(crowded.attributes.contains_key(ATTR_REPLAY_COUNT));
        assert!(!crowded.attributes.contains_key(ATTR_REPLAYED_FROM));
    }

    #[tokio::test]
    async fn the_pacer_spaces_sends() {
        let mut pacer = Pacer::new(Some(100.0));
        let started = std::time::Instant::now();
        for _ in 0..4 {
            pacer.wait().await;
        }
        assert!(started.elapsed() >= Duration::from_millis(30));
        let mut unpaced = Pacer::new(None);
        let started = std::time::Instant::now();
        unpaced.wait().await;
        assert!(started.elapsed() < Duration::from_millis(5));
    }
}

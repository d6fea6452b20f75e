//! Per-recording status: the state transitions every stage records (received, rejected,
//! transcribing, transcribed, extracting, extracted, failed — plus the sweeper's
//! `stalled` marks), the `StatusStore` port they go through, and the rules every
//! adapter shares: what identifies a transition (idempotency), which transition is a
//! recording's current state, and how attempt job names are formed.
//!
//! No PHI: a transition holds ids (session, recording, job name, object reference),
//! a state, a time, an error class and a reason *code* — never keys, URIs or text.
//!
//! A recording is identified by its session id and its base job name (the job of
//! attempt 1) or, when it was refused before a job name could be derived, its object
//! reference. Attempt `n > 1` of a transcription runs as job `{base}-a{n}`.

pub use crate::clock::now_ms;
use crate::config::{ConfigError, Env};
use crate::error::{PortError, StageError};
use std::future::Future;

/// Session id recorded for uploads whose key yields no valid session id (not itself a
/// valid session id, so it cannot collide with one).
pub const NO_SESSION: &str = "(none)";

/// A state a recording can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Received,
    Rejected,
    Transcribing,
    Transcribed,
    Extracting,
    Extracted,
    Failed,
    /// The sweeper's mark that the recording sat past a deadline; an annotation that
    /// never becomes the recording's current state.
    Stalled,
}

impl State {
    pub const ALL: [State; 8] = [
        Self::Received,
        Self::Rejected,
        Self::Transcribing,
        Self::Transcribed,
        Self::Extracting,
        Self::Extracted,
        Self::Failed,
        Self::Stalled,
    ];

    /// States a recording is expected to leave; the sweeper watches these.
    pub const OPEN: [State; 4] = [
        Self::Received,
        Self::Transcribing,
        Self::Transcribed,
        Self::Extracting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Rejected => "rejected",
            Self::Transcribing => "transcribing",
            Self::Transcribed => "transcribed",
            Self::Extracting => "extracting",
            Self::Extracted => "extracted",
            Self::Failed => "failed",
            Self::Stalled => "stalled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }

    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    /// Position in the pipeline: within one attempt, a step forward becomes current
    /// even when its clock reads earlier (stages and sweeper run on different hosts).
    pub fn rank(self) -> u32 {
        match self {
            Self::Received => 0,
            Self::Transcribing => 1,
            Self::Transcribed => 2,
            Self::Extracting => 3,
            Self::Extracted => 4,
            Self::Rejected | Self::Failed | Self::Stalled => 5,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state transition of one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub session_id: String,
    /// Base job name, or object reference when no job name was derived.
    pub recording: String,
    /// Transcription attempt, from 1.
    pub attempt: u32,
    pub state: State,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The job of this attempt, when there is one.
    pub job_name: Option<String>,
    /// Digest of bucket and key (`telepipe_events::ids::object_ref`), when known.
    pub object_ref: Option<String>,
    /// `retryable` or `permanent`, for failures.
    pub error_class: Option<String>,
    /// A reason code (`too_large`, `internal_failure`, ...). For `stalled`: the state that stalled.
    pub reason: Option<String>,
}

impl Transition {
    pub fn new(session_id: &str, recording: &str, attempt: u32, state: State, at_ms: i64) -> Self {
        Self {
            session_id: session_id.to_owned(),
            recording: recording.to_owned(),
            attempt,
            state,
            at_ms,
            job_name: None,
            object_ref: None,
            error_class: None,
            reason: None,
        }
    }

    pub fn job(mut self, job_name: &str) -> Self {
        self.job_name = Some(job_name.to_owned());
        self
    }

    pub fn object(mut self, object_ref: &str) -> Self {
        self.object_ref = Some(object_ref.to_owned());
        self
    }

    pub fn failure(mut self, error_class: &str, reason: &str) -> Self {
        self.error_class = Some(error_class.to_owned());
        self.reason = Some(reason.to_owned());
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// The state part of the identity: the state, or `stalled-{state}` for a stall mark.
    pub fn step(&self) -> String {
        match self.state {
            State::Stalled => format!("stalled-{}", self.reason.as_deref().unwrap_or("unknown")),
            state => state.as_str().to_owned(),
        }
    }

    /// What makes a transition unique within its session: the same recording, attempt
    /// and step recorded twice (a redelivery) is one entry. Sorts by recording, then
    /// attempt. Also the DynamoDB sort key (after `T#`).
    pub fn key(&self) -> String {
        format!("{}#{:03}#{}", self.recording, self.attempt, self.step())
    }

    /// Whether this transition becomes the current state over `current`: stall marks
    /// never do; otherwise a later attempt wins, and within an attempt a step further
    /// down the pipeline, or a later (or equal) time — so an operator's redrive after a
    /// failure (`failed` → `extracted`) moves the recording on, while a redelivered old
    /// step cannot move it back (its first record, with its first time, is re-applied).
    pub fn supersedes(&self, current: Option<&RecordingStatus>) -> bool {
        self.state != State::Stalled
            && current.is_none_or(|c| {
                self.attempt > c.attempt
                    || (self.attempt == c.attempt
                        && (self.state.rank() > c.state.rank() || self.at_ms >= c.since_ms))
            })
    }
}

/// A recording's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingStatus {
    pub session_id: String,
    pub recording: String,
    pub state: State,
    pub since_ms: i64,
    pub attempt: u32,
    pub job_name: Option<String>,
    pub object_ref: Option<String>,
    pub error_class: Option<String>,
    pub reason: Option<String>,
}

impl From<&Transition> for RecordingStatus {
    fn from(t: &Transition) -> Self {
        Self {
            session_id: t.session_id.clone(),
            recording: t.recording.clone(),
            state: t.state,
            since_ms: t.at_ms,
            attempt: t.attempt,
            job_name: t.job_name.clone(),
            object_ref: t.object_ref.clone(),
            error_class: t.error_class.clone(),
            reason: t.reason.clone(),
        }
    }
}

const MINUTE_MS: i64 = 60_000;

/// How long a recording may sit in each open state before the sweeper acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// `TELEPIPE_DEADLINE_RECEIVED_MINUTES` (default 15).
    pub received_minutes: u64,
    /// `TELEPIPE_TRANSCRIBE_CHECK_MINUTES` (default 10): transcribing recordings at least
    /// this old are looked up in Transcribe (FAILED → retry or park, COMPLETED → re-feed).
    pub transcribe_check_minutes: u64,
    /// `TELEPIPE_DEADLINE_TRANSCRIBING_MINUTES` (default 60): a job still QUEUED or
    /// IN_PROGRESS after this is reported stalled.
    pub transcribing_minutes: u64,
    /// `TELEPIPE_DEADLINE_TRANSCRIBED_MINUTES` (default 15).
    pub transcribed_minutes: u64,
    /// `TELEPIPE_DEADLINE_EXTRACTING_MINUTES` (default 30).
    pub extracting_minutes: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            received_minutes: 15,
            transcribe_check_minutes: 10,
            transcribing_minutes: 60,
            transcribed_minutes: 15,
            extracting_minutes: 30,
        }
    }
}

impl Deadlines {
    /// The deadline of a state, in minutes (`None` for states nobody waits on).
    pub fn deadline_minutes(&self, state: State) -> Option<u64> {
        match state {
            State::Received => Some(self.received_minutes),
            State::Transcribing => Some(self.transcribing_minutes),
            State::Transcribed => Some(self.transcribed_minutes),
            State::Extracting => Some(self.extracting_minutes),
            _ => None,
        }
    }

    /// How old a recording in `state` must be for the sweeper to look at it.
    pub fn look_after_minutes(&self, state: State) -> Option<u64> {
        match state {
            State::Transcribing => {
                Some(self.transcribe_check_minutes.min(self.transcribing_minutes))
            }
            other => self.deadline_minutes(other),
        }
    }

    /// Recordings in `state` entered at or before this time are due at `now_ms`.
    pub fn due_before_ms(&self, state: State, now_ms: i64) -> Option<i64> {
        self.look_after_minutes(state)
            .map(|m| now_ms.saturating_sub((m as i64).saturating_mul(MINUTE_MS)))
    }
}

/// Where recordings' transitions are kept: DynamoDB on AWS, SQLite locally, memory in tests.
pub trait StatusStore: Send + Sync {
    /// Records a transition once: `Ok(true)` when new, `Ok(false)` when that recording,
    /// attempt and step were recorded already (the first record is kept). Updates the
    /// recording's current state when the transition supersedes it.
    fn record(
        &self,
        transition: &Transition,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Every transition of a session, ordered by recording, then time.
    fn timeline(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<Vec<Transition>, PortError>> + Send;

    /// Recordings whose current state is open and was entered at or before that state's
    /// `Deadlines::due_before_ms(state, now_ms)`.
    fn stuck(
        &self,
        now_ms: i64,
        deadlines: &Deadlines,
    ) -> impl Future<Output = Result<Vec<RecordingStatus>, PortError>> + Send;

    /// Transitions at or after `since_ms`, into `state` when given, oldest first.
    fn query(
        &self,
        since_ms: i64,
        state: Option<State>,
    ) -> impl Future<Output = Result<Vec<Transition>, PortError>> + Send;
}

/// Records a transition for a stage. Any failure is retryable: the message must come
/// back rather than be finished (or parked) without its status.
pub async fn record_for_stage<St: StatusStore>(
    status: &St,
    transition: &Transition,
) -> Result<(), StageError> {
    status.record(transition).await.map(|_| ()).map_err(|err| {
        let context = format!(
            "session={} recording={} state={}",
            transition.session_id,
            transition.recording,
            transition.step()
        );
        StageError {
            class: crate::error::ErrorClass::Retryable,
            reason: crate::error::Reason::StatusWriteFailed,
            context,
            source: Some(err),
        }
    })
}

/// Where the status store is on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// `TELEPIPE_STATUS_TABLE` (required): the DynamoDB table name or ARN.
    pub table: String,
    /// `TELEPIPE_STATUS_TTL_DAYS` (default 90; 0 = keep forever): `expires_at` on every item.
    pub ttl_days: u32,
}

impl StatusConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table: env.required("TELEPIPE_STATUS_TABLE")?,
            ttl_days: env.parsed("TELEPIPE_STATUS_TTL_DAYS", 90u32, "whole days")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_attempts_and_times_supersede_stalls_never_do() {
        let t = |attempt, state, at| Transition::new("s", "r", attempt, state, at);
        let current = RecordingStatus::from(&t(1, State::Transcribing, 100));
        assert!(t(1, State::Transcribed, 200).supersedes(Some(&current)));
        // Forward in the pipeline wins over a skewed clock.
        assert!(t(1, State::Transcribed, 90).supersedes(Some(&current)));
        assert!(!t(1, State::Received, 50).supersedes(Some(&current)));
        assert!(t(2, State::Transcribing, 50).supersedes(Some(&current)));
        assert!(!t(1, State::Stalled, 300).supersedes(Some(&current)));
        assert!(t(1, State::Received, 1).supersedes(None));
    }

    #[test]
    fn stall_marks_are_keyed_by_the_state_that_stalled() {
        let mark = Transition::new("s", "r", 1, State::Stalled, 5).reason("transcribing");
        assert_eq!(mark.key(), "r#001#stalled-transcribing");
        assert_eq!(State::parse("FAILED"), Some(State::Failed));
    }
}

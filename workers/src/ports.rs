//! The narrow ports stages depend on. AWS adapters (`crate::aws`) implement them with
//! the SDK; `crate::memory` implements them in memory for tests; the local runtime
//! implements them with the filesystem, SQLite and offline engines.
//!
//! Futures are `Send` so any driver may spawn stage work onto a multi-threaded runtime.

use crate::error::PortError;
use std::collections::BTreeMap;
use std::future::Future;
use telepipe_events::pipeline::PipelineEvent;
use telepipe_events::results::{ClinicalEntity, EngineInfo};

/// Metadata of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

/// An object's bytes with the ETag they were read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectBody {
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
}

/// How to store an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub content_type: Option<String>,
    /// SSE-KMS key id or ARN; `None` leaves the bucket's default encryption.
    pub kms_key_id: Option<String>,
}

/// The parts of S3 the stages use.
pub trait ObjectStore: Send + Sync {
    fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> impl Future<Output = Result<ObjectHead, PortError>> + Send;

    /// At most the first `len` bytes of the object (fewer if it is shorter).
    fn get_prefix(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, PortError>> + Send;

    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<ObjectBody, PortError>> + Send;

    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        options: &PutOptions,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// How speakers are told apart in a medical transcription job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeakerMode {
    SpeakerLabels { max_speakers: u8 },
    ChannelIdentification,
}

/// Everything `StartMedicalTranscriptionJob` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalJobRequest {
    pub job_name: String,
    pub media_uri: String,
    pub media_format: String,
    pub output_bucket: String,
    pub output_key: String,
    pub output_kms_key_id: Option<String>,
    pub specialty: String,
    pub conversation_type: String,
    pub speakers: SpeakerMode,
    pub language_code: String,
    /// A medical custom vocabulary (`Settings.VocabularyName`), created beforehand.
    pub vocabulary_name: Option<String>,
    /// `ContentIdentificationType=PHI`: PHI marked in the transcript (not redacted).
    pub identify_phi: bool,
}

/// Outcome of asking for a transcription job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStart {
    Started,
    /// A job of that name exists: an earlier delivery started it.
    AlreadyExists,
}

/// Where a medical transcription job is (`GetMedicalTranscriptionJob`'s status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Queued,
    InProgress,
    /// Done; the transcript is at `transcript_uri` when the service says where.
    Completed {
        transcript_uri: Option<String>,
    },
    /// Ended in failure. `reason` is the service's own text: it may quote the media URI,
    /// so it is classified into a code (`crate::sweeper::classify_failure`) and never
    /// logged, stored or published as is.
    Failed {
        reason: String,
    },
}

impl JobState {
    /// Transcribe's status name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::InProgress => "IN_PROGRESS",
            Self::Completed { .. } => "COMPLETED",
            Self::Failed { .. } => "FAILED",
        }
    }
}

/// A job as `get_medical_job` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalJob {
    pub state: JobState,
    /// The job's settings, enough to start it again under another name; the output
    /// location may be empty (Transcribe does not return it) and is rebuilt from config.
    pub request: Option<MedicalJobRequest>,
}

pub trait Transcriber: Send + Sync {
    fn start_medical_job(
        &self,
        request: &MedicalJobRequest,
    ) -> impl Future<Output = Result<JobStart, PortError>> + Send;

    /// The job's status; `NotFound` when there is no job of that name (never started,
    /// or expired: Transcribe keeps jobs 90 days).
    fn get_medical_job(
        &self,
        job_name: &str,
    ) -> impl Future<Output = Result<MedicalJob, PortError>> + Send;
}

/// The three Comprehend Medical analyses `clinical` runs, with their input budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NlpApi {
    DetectEntitiesV2,
    InferIcd10Cm,
    InferRxNorm,
}

impl NlpApi {
    pub const ALL: [NlpApi; 3] = [
        Self::DetectEntitiesV2,
        Self::InferIcd10Cm,
        Self::InferRxNorm,
    ];

    /// Largest UTF-8 text, in bytes, one request may carry: DetectEntitiesV2 takes
    /// under 20,000 bytes, the Infer APIs at most 10,000 (bytes ≥ characters, so a
    /// byte budget also honours their character limit).
    pub fn byte_budget(self) -> usize {
        match self {
            Self::DetectEntitiesV2 => 19_999,
            Self::InferIcd10Cm | Self::InferRxNorm => 10_000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DetectEntitiesV2 => "DetectEntitiesV2",
            Self::InferIcd10Cm => "InferICD10CM",
            Self::InferRxNorm => "InferRxNorm",
        }
    }

    /// Prefix of entity ids in the results document.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Self::DetectEntitiesV2 => "entity",
            Self::InferIcd10Cm => "icd10cm",
            Self::InferRxNorm => "rxnorm",
        }
    }
}

/// A clinical NLP engine answering in Comprehend Medical's shape.
///
/// Entities come back with code-point offsets relative to `text`; `id`, `speaker`,
/// times and `turn` are left for the stage to fill.
pub trait ClinicalNlp: Send + Sync {
    fn analyze(
        &self,
        api: NlpApi,
        text: &str,
    ) -> impl Future<Output = Result<Vec<ClinicalEntity>, PortError>> + Send;

    fn engine(&self) -> EngineInfo;
}

/// A pipeline event ready to publish: its detail serialized once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEvent {
    pub detail_type: &'static str,
    pub event_id: String,
    pub session_id: Option<String>,
    pub detail: String,
}

impl OutgoingEvent {
    pub fn from_event<E: PipelineEvent>(event: &E) -> Self {
        Self {
            detail_type: E::DETAIL_TYPE,
            event_id: event.event_id().to_owned(),
            session_id: event.session_id().map(str::to_owned),
            detail: serde_json::to_string(event).expect("pipeline events serialize"),
        }
    }
}

pub trait EventPublisher: Send + Sync {
    fn publish(&self, event: &OutgoingEvent) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A message that will not succeed and is parked for an operator, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    pub source_message_id: String,
    pub stage: &'static str,
    pub error_class: &'static str,
    pub reason: String,
    /// Id-only context of the failure.
    pub context: String,
    pub receive_count: u32,
    /// The source message's string attributes, kept for replay.
    pub attributes: BTreeMap<String, String>,
}

/// Message attribute holding the dead-letter reason (for filtering replays).
pub const ATTR_REASON: &str = "telepipe.reason";
/// Message attribute holding the stage that parked the message.
pub const ATTR_STAGE: &str = "telepipe.stage";
/// Message attribute holding the rest of the dead-letter record as JSON.
pub const ATTR_DEAD_LETTER: &str = "telepipe.dead-letter";
/// SQS allows 10 message attributes; telepipe's own take 3, the source's keep the rest.
pub const MAX_KEPT_ATTRIBUTES: usize = 7;

impl DeadLetter {
    /// The message attributes a dead letter carries on any queue: telepipe's three, then
    /// up to `MAX_KEPT_ATTRIBUTES` of the source message's own.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let details = serde_json::json!({
            "stage": self.stage,
            "error_class": self.error_class,
            "reason": self.reason,
            "context": self.context,
            "source_message_id": self.source_message_id,
            "receive_count": self.receive_count,
        });
        // The correlation id (`telepipe.correlation-id`) travels on, in place of one kept attribute.
        let correlation = self.attributes.get(crate::telemetry::ATTR_CORRELATION_ID);
        let mut attributes: BTreeMap<String, String> = self
            .attributes
            .iter()
            .filter(|(name, _)| !name.starts_with("telepipe."))
            .take(MAX_KEPT_ATTRIBUTES - usize::from(correlation.is_some()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if let Some(id) = correlation {
            attributes.insert(crate::telemetry::ATTR_CORRELATION_ID.to_owned(), id.clone());
        }
        attributes.insert(ATTR_REASON.to_owned(), self.reason.clone());
        attributes.insert(ATTR_STAGE.to_owned(), self.stage.to_owned());
        attributes.insert(ATTR_DEAD_LETTER.to_owned(), details.to_string());
        attributes
    }
}

/// The queue operations a consumer needs beyond receiving: park a message now, or
/// postpone its next delivery.
pub trait MessageQueue: Send + Sync {
    fn dead_letter(
        &self,
        letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Makes a received message visible again after `delay_secs` instead of the queue default.
    fn retry_later(
        &self,
        receipt_handle: &str,
        delay_secs: u32,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A session's state with the revision it was read at (for conditional writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub state: crate::session_state::SessionState,
    pub revision: u64,
}

/// Durable session state (DynamoDB on AWS, SQLite locally), written conditionally.
pub trait SessionStore: Send + Sync {
    fn load(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<Option<StoredSession>, PortError>> + Send;

    /// Writes `state` if the stored revision is still `expected` (`None`: not stored yet);
    /// otherwise fails with `PortErrorKind::Conflict`. Returns the new revision.
    fn save(
        &self,
        state: &crate::session_state::SessionState,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64, PortError>> + Send;

    /// Sessions whose patient number has this keyed hash (`patient_phone_key`); stores
    /// without an index answer none.
    fn sessions_for_phone(
        &self,
        phone_key: &str,
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send {
        let _ = phone_key;
        async { Ok(Vec::new()) }
    }
}

/// Where a one-time schedule delivers its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleTarget {
    /// The notifier's queue (reminders).
    Notifications,
    /// The sessions worker's own queue (recording checks).
    Sessions,
}

impl ScheduleTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notifications => "notifications",
            Self::Sessions => "sessions",
        }
    }
}

/// A message to deliver once, at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeSchedule {
    pub name: String,
    pub fire_at: jiff::Timestamp,
    /// IANA zone the `at()` expression is written in.
    pub time_zone: String,
    pub target: ScheduleTarget,
    pub payload: String,
}

/// Outcome of creating a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleCreated {
    Created,
    /// A schedule of that name exists: an earlier delivery created it.
    AlreadyExists,
}

/// One-time schedules (EventBridge Scheduler on AWS, SQLite timers locally).
pub trait Scheduler: Send + Sync {
    fn create(
        &self,
        schedule: &OneTimeSchedule,
    ) -> impl Future<Output = Result<ScheduleCreated, PortError>> + Send;

    /// Deletes a schedule; `Ok(false)` when it no longer exists (fired, or deleted before).
    fn delete(&self, name: &str) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// The notifications queue, for notifications due now.
pub trait NotificationQueue: Send + Sync {
    fn enqueue(
        &self,
        request: &telepipe_events::notify::NotificationRequest,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// How an intent to notify ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IntentOutcome {
    Sent {
        provider: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_message_id: Option<String>,
    },
    Failed {
        reason: String,
    },
    /// The sender crashed between sending and recording: it may or may not have gone out.
    Unknown,
}

/// The state of an intent's idempotency record when claiming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller owns the intent now and may send.
    Claimed,
    /// Someone claimed it at `claimed_at` and has not completed it.
    InFlight {
        claimed_at: jiff::Timestamp,
    },
    Completed(IntentOutcome),
}

/// The notifier's idempotency records: claimed (conditional create) before sending,
/// completed after. Records expire after the idempotency window.
pub trait IntentLedger: Send + Sync {
    fn claim(
        &self,
        session_id: &str,
        intent_id: &str,
        owner: &str,
        now: jiff::Timestamp,
    ) -> impl Future<Output = Result<Claim, PortError>> + Send;

    fn complete(
        &self,
        session_id: &str,
        intent_id: &str,
        outcome: &IntentOutcome,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Gives a claim up when sending provably did not happen (the provider refused), so a
    /// retry may send. Only the owner's claim is released.
    fn release(
        &self,
        session_id: &str,
        intent_id: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Appends to the durable notification log (every send, skip and failure; kept for
    /// years, unlike the idempotency records, which expire after their window). Lives
    /// beside the ledger: both are what became of each intent. Stores without a log keep
    /// nothing.
    fn log(
        &self,
        entry: &NotificationLogEntry,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let _ = entry;
        async { Ok(()) }
    }
}

/// One line of the notification log: ids, kinds, the outcome and times; no address and
/// no text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotificationLogEntry {
    pub session_id: String,
    pub intent_id: String,
    pub kind: telepipe_events::notify::NotificationKind,
    pub recipient: telepipe_events::notify::Recipient,
    pub channel: telepipe_events::sessions::ContactChannel,
    /// `sent`, `skipped`, `failed` or `outcome_unknown`.
    pub outcome: String,
    /// The skip or failure reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// A rendered message for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub channel: telepipe_events::sessions::ContactChannel,
    /// E.164 number or email address, validated.
    pub to: String,
    /// Email only.
    pub subject: Option<String>,
    pub body: String,
    /// Passed to providers that deduplicate (SES/SNS ignore it; the outbox names files by it).
    pub intent_id: String,
}

/// What a provider answered when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// `sns`, `twilio`, `ses`, `outbox`.
    pub provider: &'static str,
    pub provider_message_id: Option<String>,
}

/// SMS and email delivery.
pub trait MessageSender: Send + Sync {
    fn send(
        &self,
        message: &OutboundMessage,
    ) -> impl Future<Output = Result<SendReceipt, PortError>> + Send;
}

/// Sends a message to one fixed queue (the sweeper re-feeds `clinical` through it).
pub trait RefeedQueue: Send + Sync {
    fn send(&self, body: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Listing keys under a prefix (S3 `ListObjectsV2`), for stages that look at a folder.
pub trait ObjectListing: Send + Sync {
    /// Up to `max` keys under `prefix`, in key order.
    fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;
}

/// What kind of Chime SDK media pipeline an id names (`GetMediaPipeline`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaPipelineKind {
    /// A media capture pipeline: writes a meeting's chunks into its S3 sink.
    Capture(CapturePipeline),
    /// A media concatenation pipeline (telepipe's own, joining a capture).
    Concatenation,
    /// Live connector, insights, stream pipelines: nothing telepipe joins.
    Other,
}

/// The parts of a capture pipeline the concatenation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturePipeline {
    pub arn: String,
    /// `arn:aws:s3:::bucket/prefix` the capture wrote to.
    pub sink_arn: Option<String>,
    /// The capture's SSE-KMS key, when it set one (`SseAwsKeyManagementParams`).
    pub kms_key_id: Option<String>,
}

/// Everything `CreateMediaConcatenationPipeline` needs to join one capture's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcatenationRequest {
    /// Idempotency token derived from the capture pipeline id: a redelivery creates nothing twice.
    pub client_request_token: String,
    pub capture_pipeline_arn: String,
    /// Where the capture's chunks are (`bucket`, `prefix/` holding `audio/`): what a local
    /// concatenator reads; the service knows it from the capture pipeline itself.
    pub capture_bucket: String,
    pub capture_folder: String,
    /// The recordings bucket and `recordings/{session}/` folder the joined file goes to.
    pub sink_bucket: String,
    pub sink_folder: String,
}

/// The Chime SDK media pipelines API, as far as joining captures goes.
pub trait MediaPipelines: Send + Sync {
    /// `NotFound` when no such pipeline exists (any more).
    fn get_media_pipeline(
        &self,
        media_pipeline_id: &str,
    ) -> impl Future<Output = Result<MediaPipelineKind, PortError>> + Send;

    /// Creates (or, for the same token, finds) the concatenation.
    fn create_concatenation(
        &self,
        request: &ConcatenationRequest,
    ) -> impl Future<Output = Result<Concatenation, PortError>> + Send;
}

/// What asking for a concatenation led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concatenation {
    /// The concatenation pipeline with this id joins the capture's audio.
    Started(String),
    /// No chunk could be read (a concatenator that decodes, i.e. the local one, says so
    /// up front; the AWS service starts the pipeline and reports failure later).
    NoAudio,
}

/// The audit trail: entries appended, never changed or removed (see
/// `telepipe_events::audit`). Appending the same `entry_id` twice keeps one fact.
pub trait AuditLog: Send + Sync {
    fn append(
        &self,
        entry: &telepipe_events::audit::AuditEntry,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Numbers that opted out of a channel, keyed by the number's keyed hash (never the number).
pub trait Suppressions: Send + Sync {
    fn is_suppressed(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Adds (or keeps) the number on the list; `reason` is a code (`stop`, `twilio:21610`).
    fn suppress(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
        reason: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    fn lift(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

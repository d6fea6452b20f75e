//! In-memory adapters of every port: the fakes of unit tests, the engine of benchmarks,
//! and a reference for what each port promises. Failures can be scripted per call.

use crate::error::{PortError, PortErrorKind};
use crate::ports::{
    ClinicalNlp, DeadLetter, EventPublisher, JobStart, JobState, MedicalJob, MedicalJobRequest,
    MessageQueue, NlpApi, ObjectBody, ObjectHead, ObjectStore, OutgoingEvent, PutOptions,
    RefeedQueue, Transcriber,
};
use crate::status::{Deadlines, RecordingStatus, State, StatusStore, Transition};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use telepipe_events::ids::digest_hex;
use telepipe_events::results::{ClinicalEntity, EngineInfo};

/// Scripted failures: each call pops the next entry; `None` means "behave normally".
#[derive(Default)]
pub struct Script(Mutex<VecDeque<Option<PortErrorKind>>>);

impl Script {
    pub fn push(&self, outcome: Option<PortErrorKind>) {
        self.0.lock().unwrap().push_back(outcome);
    }

    fn next(&self, service: &'static str, operation: &'static str) -> Result<(), PortError> {
        match self.0.lock().unwrap().pop_front().flatten() {
            Some(kind) => Err(PortError::new(kind, service, operation)),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub bytes: Vec<u8>,
    pub options: PutOptions,
}

/// Buckets of objects; ETags are content digests, as S3's are for single-part uploads.
#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<(String, String), StoredObject>>,
    pub failures: Script,
}

impl MemoryStore {
    pub fn insert(&self, bucket: &str, key: &str, bytes: impl Into<Vec<u8>>) {
        let object = StoredObject {
            bytes: bytes.into(),
            options: PutOptions::default(),
        };
        self.objects
            .lock()
            .unwrap()
            .insert((bucket.to_owned(), key.to_owned()), object);
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<StoredObject> {
        self.objects
            .lock()
            .unwrap()
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
    }

    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.objects
            .lock()
            .unwrap()
            .keys()
            .filter(|(b, _)| b == bucket)
            .map(|(_, k)| k.clone())
            .collect()
    }

    fn etag(bytes: &[u8]) -> String {
        format!("\"{}\"", digest_hex(&[bytes], 16))
    }

    fn read(&self, bucket: &str, key: &str, operation: &'static str) -> Result<Vec<u8>, PortError> {
        self.failures.next("s3", operation)?;
        self.objects
            .lock()
            .unwrap()
            .get(&(bucket.to_owned(), key.to_owned()))
            .map(|o| o.bytes.clone())
            .ok_or_else(|| PortError::new(PortErrorKind::NotFound, "s3", operation))
    }
}

impl ObjectStore for MemoryStore {
    async fn head(
        &self,
        bucket: &str,
        key: &str,
        _version_id: Option<&str>,
    ) -> Result<ObjectHead, PortError> {
        let bytes = self.read(bucket, key, "HeadObject")?;
        Ok(ObjectHead {
            size: bytes.len() as u64,
            etag: Some(Self::etag(&bytes)),
            version_id: None,
        })
    }

    async fn get_prefix(
        &self,
        bucket: &str,
        key: &str,
        _version_id: Option<&str>,
        len: u64,
    ) -> Result<Vec<u8>, PortError> {
        let mut bytes = self.read(bucket, key, "GetObject")?;
        bytes.truncate(len as usize);
        Ok(bytes)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<ObjectBody, PortError> {
        let bytes = self.read(bucket, key, "GetObject")?;
        Ok(ObjectBody {
            etag: Some(Self::etag(&bytes)),
            bytes,
        })
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        options: &PutOptions,
    ) -> Result<(), PortError> {
        self.failures.next("s3", "PutObject")?;
        let object = StoredObject {
            bytes: body,
            options: options.clone(),
        };
        self.objects
            .lock()
            .unwrap()
            .insert((bucket.to_owned(), key.to_owned()), object);
        Ok(())
    }
}

/// Records job requests; a repeated name answers `AlreadyExists` as Transcribe does.
/// A started job is `Queued` until a test sets its state.
#[derive(Default)]
pub struct MemoryTranscriber {
    pub jobs: Mutex<BTreeMap<String, MedicalJobRequest>>,
    pub states: Mutex<BTreeMap<String, JobState>>,
    pub failures: Script,
    /// Scripted failures of `get_medical_job`.
    pub get_failures: Script,
}

impl MemoryTranscriber {
    pub fn set_state(&self, job_name: &str, state: JobState) {
        self.states
            .lock()
            .unwrap()
            .insert(job_name.to_owned(), state);
    }
}

impl Transcriber for MemoryTranscriber {
    async fn start_medical_job(&self, request: &MedicalJobRequest) -> Result<JobStart, PortError> {
        self.failures
            .next("transcribe", "StartMedicalTranscriptionJob")?;
        let mut jobs = self.jobs.lock().unwrap();
        if jobs.contains_key(&request.job_name) {
            return Ok(JobStart::AlreadyExists);
        }
        jobs.insert(request.job_name.clone(), request.clone());
        Ok(JobStart::Started)
    }

    async fn get_medical_job(&self, job_name: &str) -> Result<MedicalJob, PortError> {
        self.get_failures
            .next("transcribe", "GetMedicalTranscriptionJob")?;
        let request = self.jobs.lock().unwrap().get(job_name).cloned();
        let state = self.states.lock().unwrap().get(job_name).cloned();
        match (request, state) {
            (None, None) => Err(PortError::new(
                PortErrorKind::NotFound,
                "transcribe",
                "GetMedicalTranscriptionJob",
            )),
            (request, state) => Ok(MedicalJob {
                state: state.unwrap_or(JobState::Queued),
                request,
            }),
        }
    }
}

/// Collects published events.
#[derive(Default)]
pub struct MemoryEvents {
    pub published: Mutex<Vec<OutgoingEvent>>,
    pub failures: Script,
}

impl MemoryEvents {
    pub fn of_type(&self, detail_type: &str) -> Vec<serde_json::Value> {
        self.published
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.detail_type == detail_type)
            .map(|e| serde_json::from_str(&e.detail).expect("details are JSON"))
            .collect()
    }
}

impl EventPublisher for MemoryEvents {
    async fn publish(&self, event: &OutgoingEvent) -> Result<(), PortError> {
        self.failures.next("events", "PutEvents")?;
        self.published.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// Collects dead letters and postponements.
#[derive(Default)]
pub struct MemoryQueue {
    pub dead_letters: Mutex<Vec<DeadLetter>>,
    pub postponed: Mutex<Vec<(String, u32)>>,
    pub failures: Script,
}

impl MessageQueue for MemoryQueue {
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), PortError> {
        self.failures.next("sqs", "SendMessage")?;
        self.dead_letters.lock().unwrap().push(letter.clone());
        Ok(())
    }

    async fn retry_later(&self, receipt_handle: &str, delay_secs: u32) -> Result<(), PortError> {
        self.postponed
            .lock()
            .unwrap()
            .push((receipt_handle.to_owned(), delay_secs));
        Ok(())
    }
}

/// Collects the messages sent to one queue.
#[derive(Default)]
pub struct MemoryRefeed {
    pub sent: Mutex<Vec<String>>,
    pub failures: Script,
}

impl RefeedQueue for MemoryRefeed {
    async fn send(&self, body: &str) -> Result<(), PortError> {
        self.failures.next("sqs", "SendMessage")?;
        self.sent.lock().unwrap().push(body.to_owned());
        Ok(())
    }
}

/// Transitions and current states in memory, with the same rules as the DynamoDB and
/// SQLite stores: one entry per (session, recording, attempt, step), the first kept.
#[derive(Default)]
pub struct MemoryStatus {
    pub transitions: Mutex<BTreeMap<(String, String), Transition>>,
    pub current: Mutex<BTreeMap<(String, String), RecordingStatus>>,
    pub failures: Script,
}

impl MemoryStatus {
    /// Every transition in recording order (for assertions).
    pub fn all(&self) -> Vec<Transition> {
        self.transitions.lock().unwrap().values().cloned().collect()
    }

    pub fn current_of(&self, session_id: &str, recording: &str) -> Option<RecordingStatus> {
        self.current
            .lock()
            .unwrap()
            .get(&(session_id.to_owned(), recording.to_owned()))
            .cloned()
    }
}

impl StatusStore for MemoryStatus {
    async fn record(&self, transition: &Transition) -> Result<bool, PortError> {
        self.failures.next("status", "Record")?;
        let mut transitions = self.transitions.lock().unwrap();
        let key = (transition.session_id.clone(), transition.key());
        let new = !transitions.contains_key(&key);
        let stored = transitions.entry(key).or_insert_with(|| transition.clone());
        let mut current = self.current.lock().unwrap();
        let recording = (stored.session_id.clone(), stored.recording.clone());
        if stored.supersedes(current.get(&recording)) {
            current.insert(recording, RecordingStatus::from(&*stored));
        }
        Ok(new)
    }

    async fn timeline(&self, session_id: &str) -> Result<Vec<Transition>, PortError> {
        self.failures.next("status", "Timeline")?;
        let mut found: Vec<Transition> = self
            .transitions
            .lock()
            .unwrap()
            .iter()
            .filter(|((session, _), _)| session == session_id)
            .map(|(_, t)| t.clone())
            .collect();
        found.sort_by(|a, b| (&a.recording, a.at_ms).cmp(&(&b.recording, b.at_ms)));
        Ok(found)
    }

    async fn stuck(
        &self,
        now_ms: i64,
        deadlines: &Deadlines,
    ) -> Result<Vec<RecordingStatus>, PortError> {
        self.failures.next("status", "Stuck")?;
        let mut found: Vec<RecordingStatus> = self
            .current
            .lock()
            .unwrap()
            .values()
            .filter(|c| {
                deadlines
                    .due_before_ms(c.state, now_ms)
                    .is_some_and(|due| c.state.is_open() && c.since_ms <= due)
            })
            .cloned()
            .collect();
        found.sort_by_key(|c| c.since_ms);
        Ok(found)
    }

    async fn query(
        &self,
        since_ms: i64,
        state: Option<State>,
    ) -> Result<Vec<Transition>, PortError> {
        self.failures.next("status", "Query")?;
        let mut found: Vec<Transition> = self
            .transitions
            .lock()
            .unwrap()
            .values()
            .filter(|t| t.at_ms >= since_ms && state.is_none_or(|s| t.state == s))
            .cloned()
            .collect();
        found.sort_by_key(|t| t.at_ms);
        Ok(found)
    }
}

/// A term-list NLP engine: every case-insensitive occurrence of a listed term is an
/// entity of its category (whole words only). Deterministic, and answers in the same
/// shape as Comprehend Medical, so stage logic can be tested without it.
pub struct KeywordNlp {
    terms: Vec<(String, &'static str, &'static str, Option<&'static str>)>,
    pub calls: Mutex<Vec<(NlpApi, usize)>>,
    pub failures: Script,
}

impl KeywordNlp {
    /// `(term, category, type, code)`: with a code, the Infer APIs report it as a concept.
    pub fn new(terms: &[(&str, &'static str, &'static str, Option<&'static str>)]) -> Self {
        Self {
            terms: terms
                .iter()
                .map(|(t, c, k, code)| (t.to_lowercase(), *c, *k, *code))
                .collect(),
            calls: Mutex::default(),
            failures: Script::default(),
        }
    }

    /// A small clinical vocabulary used across tests and benchmarks.
    pub fn clinical() -> Self {
        Self::new(&[
            ("chest pain", "MEDICAL_CONDITION", "DX_NAME", Some("R07.9")),
            (
                "shortness of breath",
                "MEDICAL_CONDITION",
                "DX_NAME",
                Some("R06.02"),
            ),
            ("hypertension", "MEDICAL_CONDITION", "DX_NAME", Some("I10")),
            ("fever", "MEDICAL_CONDITION", "DX_NAME", Some("R50.9")),
            ("metformin", "MEDICATION", "GENERIC_NAME", Some("6809")),
            ("lisinopril", "MEDICATION", "GENERIC_NAME", Some("29046")),
            ("aspirin", "MEDICATION", "GENERIC_NAME", Some("1191")),
        ])
    }

    fn find(&self, api: NlpApi, text: &str) -> Vec<ClinicalEntity> {
        let lower: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
        let original: Vec<char> = text.chars().collect();
        // Lower-casing can change length (e.g. 'İ'); fall back to no matches rather than misplace offsets.
        if lower.len() != original.len() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for (term, category, kind, code) in &self.terms {
            let wanted = match api {
                NlpApi::DetectEntitiesV2 => true,
                NlpApi::InferIcd10Cm => *category == "MEDICAL_CONDITION",
                NlpApi::InferRxNorm => *category == "MEDICATION",
            };
            if !wanted {
                continue;
            }
            let term: Vec<char> = term.chars().collect();
            let mut at = 0;
            while at + term.len() <= lower.len() {
                let boundary_before = at == 0 || !lower[at - 1].is_alphanumeric();
                let boundary_after =
                    at + term.len() == lower.len() || !lower[at + term.len()].is_alphanumeric();
                if boundary_before && boundary_after && lower[at..at + term.len()] == term[..] {
                    let concepts = match (api, code) {
                        (NlpApi::DetectEntitiesV2, _) | (_, None) => Vec::new(),
                        (_, Some(code)) => vec![telepipe_events::results::Concept {
                            code: (*code).to_owned(),
                            description: format!("concept {code}"),
                            score: 0.9,
                        }],
                    };
                    let text: String = original[at..at + term.len()].iter().collect();
                    let mut entity = ClinicalEntity::found(
                        category,
                        kind,
                        &text,
                        0.99,
                        at as u32,
                        (at + term.len()) as u32,
                    );
                    entity.concepts = concepts;
                    found.push(entity);
                    at += term.len();
                } else {
                    at += 1;
                }
            }
        }
        found
    }
}

impl ClinicalNlp for KeywordNlp {
    async fn analyze(&self, api: NlpApi, text: &str) -> Result<Vec<ClinicalEntity>, PortError> {
        self.calls.lock().unwrap().push((api, text.len()));
        self.failures.next("comprehendmedical", "Analyze")?;
        Ok(self.find(api, text))
    }

    fn engine(&self) -> EngineInfo {
        EngineInfo {
            name: "keyword-test-engine".to_owned(),
            drug_code_system: "RxNorm".to_owned(),
        }
    }
}

/// Session state with revisions, as a conditional-write store keeps it.
#[derive(Default)]
pub struct MemorySessionStore {
    pub sessions: Mutex<BTreeMap<String, crate::ports::StoredSession>>,
    pub writes: std::sync::atomic::AtomicUsize,
    pub failures: Script,
}

impl MemorySessionStore {
    pub fn get(&self, session_id: &str) -> Option<crate::session_state::SessionState> {
        self.sessions
            .lock()
            .unwrap()
            .get(session_id)
            .map(|s| s.state.clone())
    }
}

impl crate::ports::SessionStore for MemorySessionStore {
    async fn load(
        &self,
        session_id: &str,
    ) -> Result<Option<crate::ports::StoredSession>, PortError> {
        self.failures.next("dynamodb", "GetItem")?;
        Ok(self.sessions.lock().unwrap().get(session_id).cloned())
    }

    async fn save(
        &self,
        state: &crate::session_state::SessionState,
        expected: Option<u64>,
    ) -> Result<u64, PortError> {
        self.failures.next("dynamodb", "PutItem")?;
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut sessions = self.sessions.lock().unwrap();
        let current = sessions.get(&state.session_id).map(|s| s.revision);
        if current != expected {
            return Err(
                PortError::new(PortErrorKind::Conflict, "dynamodb", "PutItem")
                    .with_code("ConditionalCheckFailedException"),
            );
        }
        let revision = expected.unwrap_or(0) + 1;
        sessions.insert(
            state.session_id.clone(),
            crate::ports::StoredSession {
                state: state.clone(),
                revision,
            },
        );
        Ok(revision)
    }

    async fn sessions_for_phone(&self, phone_key: &str) -> Result<Vec<String>, PortError> {
        Ok(self
            .sessions
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.state.patient_phone_key.as_deref() == Some(phone_key))
            .map(|s| s.state.session_id.clone())
            .collect())
    }
}

/// Suppressed (phone key, channel) pairs with their reason.
#[derive(Default)]
pub struct MemorySuppressions {
    pub entries: Mutex<BTreeMap<(String, &'static str), String>>,
    pub failures: Script,
}

impl crate::ports::Suppressions for MemorySuppressions {
    async fn is_suppressed(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
    ) -> Result<bool, PortError> {
        self.failures.next("dynamodb", "GetItem")?;
        Ok(self
            .entries
            .lock()
            .unwrap()
            .contains_key(&(phone_key.to_owned(), channel.as_str())))
    }

    async fn suppress(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
        reason: &str,
    ) -> Result<(), PortError> {
        self.failures.next("dynamodb", "PutItem")?;
        self.entries
            .lock()
            .unwrap()
            .insert((phone_key.to_owned(), channel.as_str()), reason.to_owned());
        Ok(())
    }

    async fn lift(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
    ) -> Result<(), PortError> {
        self.failures.next("dynamodb", "DeleteItem")?;
        self.entries
            .lock()
            .unwrap()
            .remove(&(phone_key.to_owned(), channel.as_str()));
        Ok(())
    }
}

/// One-time schedules by name, with counts of the calls made.
#[derive(Default)]
pub struct MemoryScheduler {
    pub schedules: Mutex<BTreeMap<String, crate::ports::OneTimeSchedule>>,
    pub creates: std::sync::atomic::AtomicUsize,
    pub deletes: std::sync::atomic::AtomicUsize,
    pub failures: Script,
}

impl MemoryScheduler {
    /// Removes and returns the schedules due at `now`, as firing does.
    pub fn fire_due(&self, now: jiff::Timestamp) -> Vec<crate::ports::OneTimeSchedule> {
        let mut schedules = self.schedules.lock().unwrap();
        let due: Vec<String> = schedules
            .iter()
            .filter(|(_, s)| s.fire_at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        let mut fired: Vec<_> = due
            .iter()
            .filter_map(|name| schedules.remove(name))
            .collect();
        fired.sort_by_key(|s| s.fire_at);
        fired
    }
}

impl crate::ports::Scheduler for MemoryScheduler {
    async fn create(
        &self,
        schedule: &crate::ports::OneTimeSchedule,
    ) -> Result<crate::ports::ScheduleCreated, PortError> {
        self.failures.next("scheduler", "CreateSchedule")?;
        self.creates
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut schedules = self.schedules.lock().unwrap();
        if schedules.contains_key(&schedule.name) {
            return Ok(crate::ports::ScheduleCreated::AlreadyExists);
        }
        schedules.insert(schedule.name.clone(), schedule.clone());
        Ok(crate::ports::ScheduleCreated::Created)
    }

    async fn delete(&self, name: &str) -> Result<bool, PortError> {
        self.failures.next("scheduler", "DeleteSchedule")?;
        self.deletes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.schedules.lock().unwrap().remove(name).is_some())
    }
}

/// Collects notifications enqueued for now.
#[derive(Default)]
pub struct MemoryNotifications {
    pub enqueued: Mutex<Vec<telepipe_events::notify::NotificationRequest>>,
    pub failures: Script,
}

impl crate::ports::NotificationQueue for MemoryNotifications {
    async fn enqueue(
        &self,
        request: &telepipe_events::notify::NotificationRequest,
    ) -> Result<(), PortError> {
        self.failures.next("sqs", "SendMessage")?;
        self.enqueued.lock().unwrap().push(request.clone());
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LedgerEntry {
    Claimed { owner: String, at: jiff::Timestamp },
    Done(crate::ports::IntentOutcome),
}

/// Idempotency records with the conditional-create semantics of the real ledgers.
#[derive(Default)]
pub struct MemoryLedger {
    entries: Mutex<BTreeMap<String, LedgerEntry>>,
    /// The notification log, in order.
    pub log: Mutex<Vec<crate::ports::NotificationLogEntry>>,
    pub failures: Script,
}

impl MemoryLedger {
    pub fn outcome(&self, intent_id: &str) -> Option<crate::ports::IntentOutcome> {
        match self.entries.lock().unwrap().get(intent_id) {
            Some(LedgerEntry::Done(outcome)) => Some(outcome.clone()),
            _ => None,
        }
    }
}

impl crate::ports::IntentLedger for MemoryLedger {
    async fn log(&self, entry: &crate::ports::NotificationLogEntry) -> Result<(), PortError> {
        self.log.lock().unwrap().push(entry.clone());
        Ok(())
    }

    async fn claim(
        &self,
        _session_id: &str,
        intent_id: &str,
        owner: &str,
        now: jiff::Timestamp,
    ) -> Result<crate::ports::Claim, PortError> {
        use crate::ports::Claim;
        self.failures.next("dynamodb", "PutItem")?;
        let mut entries = self.entries.lock().unwrap();
        Ok(match entries.get(intent_id) {
            None => {
                entries.insert(
                    intent_id.to_owned(),
                    LedgerEntry::Claimed {
                        owner: owner.to_owned(),
                        at: now,
                    },
                );
                Claim::Claimed
            }
            Some(LedgerEntry::Claimed { at, .. }) => Claim::InFlight { claimed_at: *at },
            Some(LedgerEntry::Done(outcome)) => Claim::Completed(outcome.clone()),
        })
    }

    async fn complete(
        &self,
        _session_id: &str,
        intent_id: &str,
        outcome: &crate::ports::IntentOutcome,
    ) -> Result<(), PortError> {
        self.failures.next("dynamodb", "UpdateItem")?;
        self.entries
            .lock()
            .unwrap()
            .insert(intent_id.to_owned(), LedgerEntry::Done(outcome.clone()));
        Ok(())
    }

    async fn release(
        &self,
        _session_id: &str,
        intent_id: &str,
        owner: &str,
    ) -> Result<(), PortError> {
        self.failures.next("dynamodb", "DeleteItem")?;
        let mut entries = self.entries.lock().unwrap();
        if matches!(entries.get(intent_id), Some(LedgerEntry::Claimed { owner: o, .. }) if o == owner)
        {
            entries.remove(intent_id);
        }
        Ok(())
    }
}

/// Collects sent messages; failures scripted per call.
#[derive(Default)]
pub struct MemorySender {
    pub sent: Mutex<Vec<crate::ports::OutboundMessage>>,
    pub failures: Script,
}

impl crate::ports::MessageSender for MemorySender {
    async fn send(
        &self,
        message: &crate::ports::OutboundMessage,
    ) -> Result<crate::ports::SendReceipt, PortError> {
        self.failures.next("sender", "Send")?;
        let mut sent = self.sent.lock().unwrap();
        sent.push(message.clone());
        Ok(crate::ports::SendReceipt {
            provider: "memory",
            provider_message_id: Some(format!("m-{}", sent.len())),
        })
    }
}

impl crate::ports::ObjectListing for MemoryStore {
    async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        max: usize,
    ) -> Result<Vec<String>, PortError> {
        self.failures.next("s3", "ListObjectsV2")?;
        Ok(self
            .keys(bucket)
            .into_iter()
            .filter(|key| key.starts_with(prefix))
            .take(max)
            .collect())
    }
}

/// Media pipelines by id; concatenations are recorded by token, as the service dedupes them.
#[derive(Default)]
pub struct MemoryPipelines {
    pub pipelines: Mutex<BTreeMap<String, crate::ports::MediaPipelineKind>>,
    /// Requests by idempotency token (one entry per concatenation created).
    pub concatenations: Mutex<BTreeMap<String, crate::ports::ConcatenationRequest>>,
    pub failures: Script,
}

impl crate::ports::MediaPipelines for MemoryPipelines {
    async fn get_media_pipeline(
        &self,
        media_pipeline_id: &str,
    ) -> Result<crate::ports::MediaPipelineKind, PortError> {
        self.failures.next("chime", "GetMediaPipeline")?;
        self.pipelines
            .lock()
            .unwrap()
            .get(media_pipeline_id)
            .cloned()
            .ok_or_else(|| PortError::new(PortErrorKind::NotFound, "chime", "GetMediaPipeline"))
    }

    async fn create_concatenation(
        &self,
        request: &crate::ports::ConcatenationRequest,
    ) -> Result<crate::ports::Concatenation, PortError> {
        self.failures
            .next("chime", "CreateMediaConcatenationPipeline")?;
        self.concatenations
            .lock()
            .unwrap()
            .entry(request.client_request_token.clone())
            .or_insert_with(|| request.clone());
        Ok(crate::ports::Concatenation::Started(digest_hex(
            &[request.client_request_token.as_bytes()],
            18,
        )))
    }
}

/// The audit trail in memory: one entry per `entry_id`, in append order.
#[derive(Default)]
pub struct MemoryAudit {
    entries: Mutex<Vec<telepipe_events::audit::AuditEntry>>,
    pub failures: Script,
}

impl MemoryAudit {
    pub fn entries(&self) -> Vec<telepipe_events::audit::AuditEntry> {
        self.entries.lock().unwrap().clone()
    }
}

impl crate::ports::AuditLog for MemoryAudit {
    async fn append(&self, entry: &telepipe_events::audit::AuditEntry) -> Result<(), PortError> {
        self.failures.next("audit", "Append")?;
        let mut entries = self.entries.lock().unwrap();
        if !entries.iter().any(|e| e.entry_id == entry.entry_id) {
            entries.push(entry.clone());
        }
        Ok(())
    }
}

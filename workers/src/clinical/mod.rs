//! The `clinical` stage: a finished Transcribe Medical transcript becomes a results
//! document of clinical entities, each mapped to its speaker and audio time, and a
//! `Clinical Entities Extracted` event.
//!
//! Speaker roles (`roles`): beside each raw label, `clinician` or `patient` when the words
//! make it clear (document `speaker_roles`, `role` on turns and entities); none otherwise.
//!
//! Deterministic: the same transcript and the same engine answers produce the same
//! document bytes and therefore the same event id, so reprocessing is harmless.
//!
//! Status (`crate::status`): records `transcribed` and `extracting` when a transcript
//! arrives, then `extracted`, or `failed` on a permanent failure (the recording and
//! attempt come from the job name, `{base}` or `{base}-a{n}`); a status write failure
//! is retryable.

pub mod chunk;
mod config;
pub mod conversation;
pub mod roles;

use crate::error::Reason;
use crate::error::{PortErrorKind, PortResultExt, StageError};
use crate::metrics;
use crate::ports::{ClinicalNlp, EventPublisher, NlpApi, ObjectStore, OutgoingEvent, PutOptions};
use crate::records::for_each_record;
use crate::status::{now_ms, record_for_stage, State, StatusStore, Transition};
use crate::telemetry;
use chunk::{chunk_text, Chunk};
pub use config::{ClinicalConfig, DEFAULT_MAX_TRANSCRIPT_BYTES};
use conversation::Conversation;
use futures::stream::{self, StreamExt};
use std::collections::BTreeMap;
use telepipe_events::capture::TranscriptReady;
use telepipe_events::ids::{self, digest_hex, JobName, SessionId};
use telepipe_events::pipeline::{
    schema_version, ClinicalEntitiesExtracted, PipelineEvent, RequestCounts,
};
use telepipe_events::results::{
    CharacterCounts, ClinicalEntity, ResultsDocument, TranscriptSource, Turn,
};
use telepipe_events::s3::S3Record;
use telepipe_events::transcribe::TranscribeOutput;
use telepipe_events::SCHEMA_VERSION;
use tracing::info;

pub const STAGE: &str = "clinical";

/// The most speaker labels a transcript may carry (Transcribe Medical's `MaxSpeakerLabels` cap).
pub const MAX_SPEAKERS: usize = 30;

/// What Transcribe writes to test access to its output location; not a transcript.
pub const TRANSCRIBE_PROBE_FILE: &str = ".write_access_check_file.temp";

pub struct ClinicalPorts<'a, S, N, P, St> {
    pub store: &'a S,
    pub nlp: &'a N,
    pub events: &'a P,
    /// Records transcribed, extracting, extracted and failed.
    pub status: &'a St,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptOutcome {
    Extracted {
        job_name: String,
        results_key: String,
    },
    /// Not a transcript (Transcribe's write-access check file, a delete event).
    Ignored,
}

/// Handles one SQS message body from the transcripts bucket's notifications.
pub async fn handle_message<S, N, P, St>(
    ports: &ClinicalPorts<'_, S, N, P, St>,
    config: &ClinicalConfig,
    body: &str,
) -> Result<Vec<TranscriptOutcome>, StageError>
where
    S: ObjectStore,
    N: ClinicalNlp,
    P: EventPublisher,
    St: StatusStore,
{
    for_each_record(body, async |record: &S3Record| {
        handle_record(ports, config, record).await
    })
    .await
}

/// `{prefix}{session}/{job}.json` → (session, job name).
pub fn parse_transcript_key(prefix: &str, key: &str) -> Option<(SessionId, JobName)> {
    let rest = key.strip_prefix(prefix)?;
    let (session, file) = rest.split_once('/')?;
    let job = file.strip_suffix(".json")?;
    let session = SessionId::parse(session).ok()?;
    Some((session, JobName::parse(job)?))
}

async fn handle_record<S, N, P, St>(
    ports: &ClinicalPorts<'_, S, N, P, St>,
    config: &ClinicalConfig,
    record: &S3Record,
) -> Result<TranscriptOutcome, StageError>
where
    S: ObjectStore,
    N: ClinicalNlp,
    P: EventPublisher,
    St: StatusStore,
{
    let span = tracing::Span::current();
    let key = match &record.key {
        Ok(key) => key.as_str(),
        Err(err) => return Err(StageError::permanent(Reason::InvalidKey, err.to_string())),
    };
    // Transcribe probes its output location with this file before writing the transcript.
    let is_probe = key.rsplit('/').next() == Some(TRANSCRIBE_PROBE_FILE);
    if !record.is_object_created() || is_probe {
        info!(event_name = %record.event_name, "not a transcript object; nothing to do");
        return Ok(TranscriptOutcome::Ignored);
    }
    let bucket = record.bucket.as_str();
    let Some((session, job)) = parse_transcript_key(&config.transcripts_prefix, key) else {
        return Err(StageError::permanent(
            Reason::UnexpectedTranscriptKey,
            format!(
                "object_ref={}: key is not {}{{session_id}}/{{job_name}}.json",
                ids::object_ref(bucket, key),
                config.transcripts_prefix
            ),
        ));
    };
    span.record("session_id", session.as_str());
    span.record("job_name", job.as_str());
    // Status lines carry the correlation id too.
    if let Some(id) = job.correlation_id() {
        telemetry::set_correlation_id(id);
    }
    let job_name = job.as_str();
    let transition = |state| {
        Transition::new(
            session.as_str(),
            job.recording(),
            job.attempt(),
            state,
            now_ms(),
        )
        .job(job_name)
    };
    record_for_stage(ports.status, &transition(State::Transcribed)).await?;
    record_for_stage(ports.status, &transition(State::Extracting)).await?;
    let result = extract(ports, config, bucket, key, &session, &job).await;
    match &result {
        Ok(_) => record_for_stage(ports.status, &transition(State::Extracted)).await?,
        // Permanent: the message is parked, so the recording has failed. Retryable
        // failures leave it extracting; the sweeper reports it if it stays there.
        Err(err) if !err.is_retryable() => {
            let failed = transition(State::Failed).failure(err.class.as_str(), err.reason.as_str());
            record_for_stage(ports.status, &failed).await?;
        }
        Err(_) => {}
    }
    result
}

async fn extract<S, N, P, St>(
    ports: &ClinicalPorts<'_, S, N, P, St>,
    config: &ClinicalConfig,
    bucket: &str,
    key: &str,
    session: &SessionId,
    job: &JobName,
) -> Result<TranscriptOutcome, StageError>
where
    S: ObjectStore,
    N: ClinicalNlp,
    P: EventPublisher,
    St: StatusStore,
{
    let job_name = job.to_string();
    let correlation_id = job.correlation_id().map(telemetry::set_correlation_id);
    let context = || format!("session={session} job={job_name}");

    // The size is checked before anything is read, and the read itself is capped, so an
    // oversized (or growing) object never lands in memory.
    let head = match ports.store.head(bucket, key, None).await {
        Err(err) if err.kind == PortErrorKind::NotFound => {
            return Err(StageError::permanent(Reason::TranscriptMissing, context()));
        }
        other => other.context(context)?,
    };
    if head.size > config.max_transcript_bytes {
        return Err(StageError::permanent(
            Reason::TranscriptTooLarge,
            format!(
                "{}: {} bytes exceeds {}",
                context(),
                head.size,
                config.max_transcript_bytes
            ),
        ));
    }
    let object = match ports
        .store
        .get_prefix(bucket, key, None, config.max_transcript_bytes + 1)
        .await
    {
        Err(err) if err.kind == PortErrorKind::NotFound => {
            return Err(StageError::permanent(Reason::TranscriptMissing, context()));
        }
        other => crate::ports::ObjectBody {
            bytes: other.context(context)?,
            etag: head.etag.clone(),
        },
    };
    if object.bytes.len() as u64 > config.max_transcript_bytes {
        return Err(StageError::permanent(
            Reason::TranscriptTooLarge,
            format!(
                "{}: {} bytes exceeds {}",
                context(),
                object.bytes.len(),
                config.max_transcript_bytes
            ),
        ));
    }
    let output: TranscribeOutput = serde_json::from_slice(&object.bytes).map_err(|err| {
        // serde's message may quote transcript content; keep only where and what kind.
        StageError::permanent(
            Reason::MalformedTranscript,
            format!(
                "{}: {:?} error at line {} column {}",
                context(),
                err.classify(),
                err.line(),
                err.column()
            ),
        )
    })?;
    // The transcript landed and reads as one: say so before the slower extraction, so
    // consumers that only want the transcript need not wait (ids and URI only).
    let ready = TranscriptReady::new(
        session.as_str(),
        &job_name,
        &format!("s3://{bucket}/{key}"),
        correlation_id.clone(),
    );
    ports
        .events
        .publish(&OutgoingEvent::from_event(&ready))
        .await
        .context(|| format!("{} event={}", context(), TranscriptReady::DETAIL_TYPE))?;
    let conversation = Conversation::from_output(&output);
    drop(output);
    // Transcribe labels at most 30 speakers (2 channels); more is not a transcript it wrote,
    // and every label is carried into the results document.
    if conversation.speakers.len() > MAX_SPEAKERS {
        return Err(StageError::permanent(
            Reason::TooManySpeakers,
            format!(
                "{}: {} speaker labels, at most {MAX_SPEAKERS}",
                context(),
                conversation.speakers.len()
            ),
        ));
    }
    let source = TranscriptSource {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        etag: object.etag.clone(),
    };
    drop(object);

    let analysis = analyze(ports.nlp, &conversation.text, config)
        .await
        .map_err(|err| StageError {
            context: format!("{} {}", context(), err.context),
            ..err
        })?;
    let document = assemble(
        session.as_str(),
        &job_name,
        source,
        ports.nlp.engine(),
        &conversation,
        analysis,
    );
    let bytes = serde_json::to_vec(&document).expect("results documents serialize");
    let results_key = format!("{}{}/{}.json", config.results_prefix, session, job_name);
    let options = PutOptions {
        content_type: Some("application/json".to_owned()),
        kms_key_id: config.results_kms_key_id.clone(),
    };
    let mut event = extracted_event(&document, &bytes, &config.results_bucket, &results_key);
    event.correlation_id = correlation_id;
    ports
        .store
        .put(&config.results_bucket, &results_key, bytes, &options)
        .await
        .context(context)?;
    ports
        .events
        .publish(&OutgoingEvent::from_event(&event))
        .await
        .context(context)?;
    info!(
        entities = document.entities.len(),
        icd10cm = document.icd10cm.len(),
        rxnorm = document.rxnorm.len(),
        turns = document.turns.len(),
        requests_detect = document.requests.detect_entities_v2,
        requests_icd10cm = document.requests.infer_icd10cm,
        requests_rxnorm = document.requests.infer_rxnorm,
        "clinical entities extracted"
    );
    Ok(TranscriptOutcome::Extracted {
        job_name,
        results_key,
    })
}

/// Entities per API with offsets in the full text, and what it cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    pub by_api: BTreeMap<NlpApi, Vec<ClinicalEntity>>,
    pub requests: RequestCounts,
    pub characters: CharacterCounts,
}

/// Runs every API over its own chunking of `text`, `nlp_concurrency` requests at a
/// time, retrying throttling and 5xx with jittered backoff; rebases entity offsets.
pub async fn analyze<N: ClinicalNlp>(
    nlp: &N,
    text: &str,
    config: &ClinicalConfig,
) -> Result<Analysis, StageError> {
    let jobs: Vec<(NlpApi, usize, Chunk<'_>)> = NlpApi::ALL
        .into_iter()
        .flat_map(|api| {
            chunk_text(text, api.byte_budget())
                .into_iter()
                .filter(|chunk| !chunk.is_blank())
                .enumerate()
                .map(move |(index, chunk)| (api, index, chunk))
        })
        .collect();
    let mut analysis = Analysis::default();
    for (api, _, chunk) in &jobs {
        let (requests, characters) = match api {
            NlpApi::DetectEntitiesV2 => (
                &mut analysis.requests.detect_entities_v2,
                &mut analysis.characters.detect_entities_v2,
            ),
            NlpApi::InferIcd10Cm => (
                &mut analysis.requests.infer_icd10cm,
                &mut analysis.characters.infer_icd10cm,
            ),
            NlpApi::InferRxNorm => (
                &mut analysis.requests.infer_rxnorm,
                &mut analysis.characters.infer_rxnorm,
            ),
        };
        *requests += 1;
        *characters += u64::from(chunk.char_len);
    }
    let mut answers: Vec<(NlpApi, usize, Vec<ClinicalEntity>)> = Vec::with_capacity(jobs.len());
    let mut results = stream::iter(jobs.iter().map(|&(api, index, chunk)| async move {
        let (result, attempts) = config.nlp_retry.run(|| nlp.analyze(api, chunk.text)).await;
        (api, index, chunk, result, attempts)
    }))
    .buffer_unordered(config.nlp_concurrency);
    while let Some((api, index, chunk, result, attempts)) = results.next().await {
        let mut entities = result.map_err(|err| {
            StageError::from_port(
                err,
                format!("api={} chunk={index} attempts={attempts}", api.as_str()),
            )
        })?;
        metrics::comprehend_request(api.as_str(), u64::from(chunk.char_len));
        for entity in &mut entities {
            rebase(entity, chunk.char_start);
        }
        answers.push((api, index, entities));
    }
    // Requests finish in any order; the document must not depend on it.
    answers.sort_by_key(|(api, index, _)| (*api, *index));
    for (api, _, entities) in answers {
        analysis.by_api.entry(api).or_default().extend(entities);
    }
    Ok(analysis)
}

/// Moves chunk-relative code-point offsets onto the full text.
pub fn rebase(entity: &mut ClinicalEntity, char_start: u32) {
    entity.begin_offset += char_start;
    entity.end_offset += char_start;
    for attribute in &mut entity.attributes {
        attribute.begin_offset += char_start;
        attribute.end_offset += char_start;
    }
}

/// Fills each entity's speaker, audio times and turn from the words it spans.
pub fn locate(entity: &mut ClinicalEntity, conversation: &Conversation) {
    let words = &conversation.words;
    let first = words.partition_point(|w| w.end <= entity.begin_offset);
    let past_last = words.partition_point(|w| w.begin < entity.end_offset);
    if first < past_last {
        let (head, tail) = (words[first], words[past_last - 1]);
        let turn = &conversation.turns[head.turn as usize];
        entity.speaker = Some(conversation.speakers[turn.speaker as usize].clone());
        entity.start_ms = Some(head.start_ms);
        entity.end_ms = Some(tail.end_ms);
        entity.turn = Some(head.turn);
    } else if let Some(index) = conversation
        .turns
        .iter()
        .position(|t| t.begin <= entity.begin_offset && entity.begin_offset < t.end)
    {
        let turn = &conversation.turns[index];
        entity.speaker = Some(conversation.speakers[turn.speaker as usize].clone());
        entity.turn = Some(index as u32);
    }
}

fn assemble(
    session_id: &str,
    job_name: &str,
    transcript: TranscriptSource,
    engine: telepipe_events::results::EngineInfo,
    conversation: &Conversation,
    mut analysis: Analysis,
) -> ResultsDocument {
    let speaker_roles = roles::speaker_roles(conversation.turn_texts());
    let role_of = |label: &str| speaker_roles.get(label).copied();
    let mut finish = |api: NlpApi| {
        let mut entities = analysis.by_api.remove(&api).unwrap_or_default();
        entities.sort_by(|a, b| {
            (a.begin_offset, a.end_offset, &a.category, &a.kind).cmp(&(
                b.begin_offset,
                b.end_offset,
                &b.category,
                &b.kind,
            ))
        });
        for (n, entity) in entities.iter_mut().enumerate() {
            entity.id = format!("{}-{n}", api.id_prefix());
            locate(entity, conversation);
            entity.role = entity.speaker.as_deref().and_then(role_of);
        }
        entities
    };
    let entities = finish(NlpApi::DetectEntitiesV2);
    let icd10cm = finish(NlpApi::InferIcd10Cm);
    let rxnorm = finish(NlpApi::InferRxNorm);
    let turns = conversation
        .turns
        .iter()
        .map(|t| Turn {
            speaker: conversation.speakers[t.speaker as usize].clone(),
            role: role_of(&conversation.speakers[t.speaker as usize]),
            start_ms: t.start_ms,
            end_ms: t.end_ms,
            begin_offset: t.begin,
            end_offset: t.end,
        })
        .collect();
    ResultsDocument {
        schema_version: SCHEMA_VERSION,
        session_id: session_id.to_owned(),
        job_name: job_name.to_owned(),
        transcript,
        engine,
        labelling: conversation.labelling,
        speakers: conversation.speakers.clone(),
        speaker_roles,
        duration_ms: conversation.duration_ms,
        text: conversation.text.clone(),
        turns,
        entities,
        icd10cm,
        rxnorm,
        requests: analysis.requests,
        characters_sent: analysis.characters,
    }
}

fn extracted_event(
    document: &ResultsDocument,
    bytes: &[u8],
    bucket: &str,
    key: &str,
) -> ClinicalEntitiesExtracted {
    let mut by_category = BTreeMap::new();
    for entity in &document.entities {
        *by_category.entry(entity.category.clone()).or_insert(0u32) += 1;
    }
    ClinicalEntitiesExtracted {
        schema_version: schema_version(),
        event_id: digest_hex(
            &[ClinicalEntitiesExtracted::DETAIL_TYPE.as_bytes(), bytes],
            16,
        ),
        session_id: document.session_id.clone(),
        job_name: document.job_name.clone(),
        results_uri: format!("s3://{bucket}/{key}"),
        entities_by_category: by_category,
        icd10cm_concepts: document
            .icd10cm
            .iter()
            .map(|e| e.concepts.len() as u32)
            .sum(),
        rxnorm_concepts: document
            .rxnorm
            .iter()
            .map(|e| e.concepts.len() as u32)
            .sum(),
        turns: document.turns.len() as u32,
        speakers: document.speakers.len() as u32,
        duration_ms: document.duration_ms,
        requests: document.requests,
        correlation_id: None,
    }
}

//! `clinical` decisions with in-memory ports: turns, chunking within budgets, offset
//! rebasing, speaker/time mapping, determinism, retries and every error class.

use proptest::prelude::*;
use telepipe_events::results::{ClinicalEntity, Labelling, ResultsDocument, SpeakerRole};
use telepipe_events::s3::encode_key;
use telepipe_workers::clinical::conversation::Conversation;
use telepipe_workers::clinical::ClinicalConfig;
use telepipe_workers::clinical::{
    analyze, handle_message, rebase, ClinicalPorts, TranscriptOutcome,
};
use telepipe_workers::config::Env;
use telepipe_workers::error::{ErrorClass, PortError, PortErrorKind};
use telepipe_workers::memory::{KeywordNlp, MemoryEvents, MemoryStatus, MemoryStore};
use telepipe_workers::ports::{ClinicalNlp, NlpApi};
use telepipe_workers::synth::{transcript, SynthLabels};

const TRANSCRIPTS: &str = "transcripts-bucket";
const KEY: &str = "transcripts/sess-9/sess-9-abc123.json";

fn config() -> ClinicalConfig {
    let mut cfg = ClinicalConfig::from_env(&Env::from_pairs(&[(
        "TELEPIPE_RESULTS_BUCKET",
        "results-bucket",
    )]))
    .unwrap();
    cfg.nlp_retry.initial_interval = std::time::Duration::from_millis(1);
    cfg
}

fn notification(key: &str) -> String {
    serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": TRANSCRIPTS}, "object": {"key": encode_key(key)}}}]})
    .to_string()
}

struct World {
    store: MemoryStore,
    nlp: KeywordNlp,
    events: MemoryEvents,
    status: MemoryStatus,
}

impl World {
    fn new() -> Self {
        Self {
            store: MemoryStore::default(),
            nlp: KeywordNlp::clinical(),
            events: MemoryEvents::default(),
            status: MemoryStatus::default(),
        }
    }

    fn ports(&self) -> ClinicalPorts<'_, MemoryStore, KeywordNlp, MemoryEvents, MemoryStatus> {
        ClinicalPorts {
            store: &self.store,
            nlp: &self.nlp,
            events: &self.events,
            status: &self.status,
        }
    }

    fn results(&self) -> ResultsDocument {
        let object = self
            .store
            .object("results-bucket", "clinical/sess-9/sess-9-abc123.json")
            .expect("results written");
        serde_json::from_slice(&object.bytes).unwrap()
    }
}

fn selected(text: &str, entity: &ClinicalEntity) -> String {
    text.chars()
        .skip(entity.begin_offset as usize)
        .take((entity.end_offset - entity.begin_offset) as usize)
        .collect()
}

#[tokio::test]
async fn transcript_becomes_a_results_document_with_speakers_and_times() {
    let world = World::new();
    world
        .store
        .insert(TRANSCRIPTS, KEY, transcript(400, SynthLabels::Speakers));
    let outcomes = handle_message(&world.ports(), &config(), &notification(KEY))
        .await
        .unwrap();
    assert!(matches!(
        &outcomes[..],
        [TranscriptOutcome::Extracted { .. }]
    ));
    let doc = world.results();
    assert_eq!(doc.labelling, Labelling::SpeakerLabels);
    assert_eq!(doc.speakers, ["spk_0", "spk_1"]);
    assert!(!doc.entities.is_empty() && !doc.icd10cm.is_empty() && !doc.rxnorm.is_empty());
    for entity in doc.entities.iter().chain(&doc.icd10cm).chain(&doc.rxnorm) {
        assert_eq!(selected(&doc.text, entity), entity.text);
        let turn = &doc.turns[entity.turn.unwrap() as usize];
        assert_eq!(entity.speaker.as_deref(), Some(turn.speaker.as_str()));
        assert!(turn.begin_offset <= entity.begin_offset && entity.end_offset <= turn.end_offset);
        let (start, end) = (entity.start_ms.unwrap(), entity.end_ms.unwrap());
        assert!(turn.start_ms <= start && start < end && end <= turn.end_ms);
    }
    assert!(
        !doc.text.contains("spk_"),
        "speaker labels never enter the analysed text"
    );
    let ids: Vec<&str> = doc.entities.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids[0], "entity-0");
    let object = world
        .store
        .object("results-bucket", "clinical/sess-9/sess-9-abc123.json")
        .unwrap();
    assert_eq!(
        object.options.content_type.as_deref(),
        Some("application/json")
    );

    let events = world.events.of_type("Clinical Entities Extracted");
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["results_uri"],
        "s3://results-bucket/clinical/sess-9/sess-9-abc123.json"
    );
    assert_eq!(
        events[0]["entities_by_category"]["MEDICATION"],
        doc.entities
            .iter()
            .filter(|e| e.category == "MEDICATION")
            .count()
    );
    assert_eq!(events[0]["requests"]["detect_entities_v2"], 1);
}

#[tokio::test]
async fn the_doctor_and_patient_are_told_apart_and_named_beside_their_labels() {
    let world = World::new();
    world
        .store
        .insert(TRANSCRIPTS, KEY, transcript(200, SynthLabels::Speakers));
    handle_message(&world.ports(), &config(), &notification(KEY))
        .await
        .unwrap();
    let doc = world.results();
    assert_eq!(doc.speakers, ["spk_0", "spk_1"], "raw labels unchanged");
    assert_eq!(
        doc.speaker_roles.clone().into_iter().collect::<Vec<_>>(),
        [
            ("spk_0".to_owned(), SpeakerRole::Clinician),
            ("spk_1".to_owned(), SpeakerRole::Patient)
        ]
    );
    for turn in &doc.turns {
        assert_eq!(turn.role, doc.speaker_roles.get(&turn.speaker).copied());
    }
    // The synthetic doctor asks about chest pain; the patient reports taking aspirin. Each
    // entity keeps its speaker's label and gains the role.
    let entity_said = |text: &str| {
        let entity = doc.entities.iter().find(|e| e.text == text);
        entity.unwrap_or_else(|| panic!("{text} found"))
    };
    let chest_pain = entity_said("chest pain");
    assert_eq!(
        (chest_pain.speaker.as_deref(), chest_pain.role),
        (Some("spk_0"), Some(SpeakerRole::Clinician))
    );
    let aspirin = entity_said("aspirin");
    assert_eq!(
        (aspirin.speaker.as_deref(), aspirin.role),
        (Some("spk_1"), Some(SpeakerRole::Patient))
    );
    let json: serde_json::Value = serde_json::to_value(&doc).unwrap();
    let entity = json["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == aspirin.id.as_str())
        .unwrap();
    assert_eq!(
        (&entity["speaker"], &entity["role"]),
        (&"spk_1".into(), &"patient".into())
    );
    assert_eq!(
        json["speaker_roles"],
        serde_json::json!({"spk_0": "clinician", "spk_1": "patient"})
    );
}

#[tokio::test]
async fn channel_labelled_and_unlabelled_transcripts_work() {
    for (labels, expected, roles) in [
        (
            SynthLabels::Channels,
            Labelling::ChannelLabels,
            &[
                ("ch_0", SpeakerRole::Clinician),
                ("ch_1", SpeakerRole::Patient),
            ][..],
        ),
        // One speaker: nobody to tell apart, so no roles.
        (SynthLabels::None, Labelling::None, &[][..]),
    ] {
        let world = World::new();
        world
            .store
            .insert(TRANSCRIPTS, KEY, transcript(150, labels));
        handle_message(&world.ports(), &config(), &notification(KEY))
            .await
            .unwrap();
        let doc = world.results();
        assert_eq!(doc.labelling, expected);
        let found: Vec<(&str, SpeakerRole)> = doc
            .speaker_roles
            .iter()
            .map(|(label, role)| (label.as_str(), *role))
            .collect();
        assert_eq!(found, roles);
        assert!(doc
            .entities
            .iter()
            .all(|e| e.speaker.is_some() && e.start_ms.is_some()));
    }
}

#[tokio::test]
async fn reprocessing_is_byte_identical_and_reuses_the_event_id() {
    let world = World::new();
    world
        .store
        .insert(TRANSCRIPTS, KEY, transcript(3000, SynthLabels::Speakers));
    let mut cfg = config();
    cfg.nlp_concurrency = 8;
    handle_message(&world.ports(), &cfg, &notification(KEY))
        .await
        .unwrap();
    let first = world
        .store
        .object("results-bucket", "clinical/sess-9/sess-9-abc123.json")
        .unwrap()
        .bytes;
    handle_message(&world.ports(), &cfg, &notification(KEY))
        .await
        .unwrap();
    let second = world
        .store
        .object("results-bucket", "clinical/sess-9/sess-9-abc123.json")
        .unwrap()
        .bytes;
    assert_eq!(first, second);
    let events = world.events.of_type("Clinical Entities Extracted");
    assert_eq!(events[0]["event_id"], events[1]["event_id"]);
}

#[tokio::test]
async fn long_transcripts_are_chunked_within_each_apis_budget() {
    let world = World::new();
    world
        .store
        .insert(TRANSCRIPTS, KEY, transcript(9000, SynthLabels::Speakers));
    handle_message(&world.ports(), &config(), &notification(KEY))
        .await
        .unwrap();
    let calls = world.nlp.calls.lock().unwrap().clone();
    for (api, bytes) in &calls {
        assert!(*bytes <= api.byte_budget(), "{api:?} sent {bytes} bytes");
    }
    let doc = world.results();
    let text_bytes = doc.text.len();
    let detect = calls
        .iter()
        .filter(|(api, _)| *api == NlpApi::DetectEntitiesV2)
        .count();
    let icd = calls
        .iter()
        .filter(|(api, _)| *api == NlpApi::InferIcd10Cm)
        .count();
    assert_eq!(
        detect,
        text_bytes.div_ceil(19_999).max(detect),
        "no more requests than needed"
    );
    assert!(detect >= 2 && icd > detect);
    assert_eq!(doc.requests.detect_entities_v2 as usize, detect);
    assert_eq!(
        doc.characters_sent.detect_entities_v2 as usize,
        doc.text.chars().count()
    );
}

#[tokio::test]
async fn empty_transcripts_give_an_empty_document_and_no_requests() {
    let world = World::new();
    world.store.insert(
        TRANSCRIPTS,
        KEY,
        r#"{"jobName":"j","results":{"transcripts":[{"transcript":""}],"items":[]}}"#,
    );
    handle_message(&world.ports(), &config(), &notification(KEY))
        .await
        .unwrap();
    let doc = world.results();
    assert!(doc.entities.is_empty() && doc.turns.is_empty());
    assert!(world.nlp.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn throttling_is_retried_within_the_message() {
    let world = World::new();
    world
        .store
        .insert(TRANSCRIPTS, KEY, transcript(100, SynthLabels::Speakers));
    world.nlp.failures.push(Some(PortErrorKind::Throttled));
    world.nlp.failures.push(Some(PortErrorKind::Unavailable));
    handle_message(&world.ports(), &config(), &notification(KEY))
        .await
        .unwrap();
    assert_eq!(
        world.nlp.calls.lock().unwrap().len(),
        5,
        "3 APIs + 2 retries"
    );
    assert!(!world.results().entities.is_empty());
}

#[tokio::test]
async fn persistent_throttling_becomes_a_retryable_stage_error_with_no_output() {
    let world = World::new();
    world
        .store
        .insert(TRANSCRIPTS, KEY, transcript(100, SynthLabels::Speakers));
    let mut cfg = config();
    cfg.nlp_concurrency = 1;
    for _ in 0..cfg.nlp_retry.max_attempts {
        world.nlp.failures.push(Some(PortErrorKind::Throttled));
    }
    let err = handle_message(&world.ports(), &cfg, &notification(KEY))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Retryable);
    assert!(err.context.contains("attempts=6"), "{}", err.context);
    assert!(world.store.keys("results-bucket").is_empty());
    // Only the transcript's arrival was announced; no extraction result.
    let published: Vec<String> = world
        .events
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.detail_type.to_owned())
        .collect();
    assert_eq!(published, ["Transcript Ready"]);
}

#[tokio::test]
async fn transcripts_over_the_size_cap_or_with_too_many_speakers_are_refused_unread() {
    let world = World::new();
    let items: Vec<serde_json::Value> = (0..31)
        .map(|i| {
            serde_json::json!({"start_time": format!("{i}.0"), "end_time": format!("{i}.5"),
                "alternatives": [{"confidence": "0.9", "content": "word"}],
                "type": "pronunciation", "speaker_label": format!("spk_{i}")})
        })
        .collect();
    let crowded = serde_json::json!({"jobName": "j", "results": {
        "transcripts": [{"transcript": "word"}], "items": items}});
    world.store.insert(TRANSCRIPTS, KEY, crowded.to_string());
    let err = handle_message(&world.ports(), &config(), &notification(KEY))
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.reason.as_str()),
        (ErrorClass::Permanent, "too_many_speakers")
    );

    let mut small = config();
    small.max_transcript_bytes = 1_000;
    world
        .store
        .insert(TRANSCRIPTS, KEY, transcript(400, SynthLabels::Speakers));
    let err = handle_message(&world.ports(), &small, &notification(KEY))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "transcript_too_large");
    assert!(world.store.keys("results-bucket").is_empty());
}

#[tokio::test]
async fn invalid_requests_are_permanent() {
    let world = World::new();
    world
        .store
        .insert(TRANSCRIPTS, KEY, transcript(100, SynthLabels::Speakers));
    world.nlp.failures.push(Some(PortErrorKind::InvalidRequest));
    let err = handle_message(&world.ports(), &config(), &notification(KEY))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
}

#[tokio::test]
async fn bad_transcripts_and_keys_are_permanent_and_say_why() {
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        (KEY, None, "transcript_missing"),
        (KEY, Some("{not json"), "malformed_transcript"),
        (
            KEY,
            Some(r#"{"results":{"items":[{"type":"pronunciation","start_time":"PHI-MARKER"}]}}"#),
            "malformed_transcript",
        ),
        (
            "transcripts/only-one-segment.json",
            Some("{}"),
            "unexpected_transcript_key",
        ),
        (
            "transcripts/bad id/j.json",
            Some("{}"),
            "unexpected_transcript_key",
        ),
    ];
    for (key, body, reason) in cases {
        let world = World::new();
        if let Some(body) = body {
            world.store.insert(TRANSCRIPTS, key, body);
        }
        let err = handle_message(&world.ports(), &config(), &notification(key))
            .await
            .unwrap_err();
        assert_eq!(
            (err.class, err.reason.as_str()),
            (ErrorClass::Permanent, reason),
            "{key}"
        );
        assert!(!err.to_string().contains("PHI-MARKER"), "{err}");
    }
}

#[tokio::test]
async fn transcribe_probe_files_are_ignored() {
    let world = World::new();
    let outcomes = handle_message(
        &world.ports(),
        &config(),
        &notification("transcripts/.write_access_check_file.temp"),
    )
    .await
    .unwrap();
    assert_eq!(outcomes, vec![TranscriptOutcome::Ignored]);
}

#[tokio::test]
async fn storage_outage_is_retryable() {
    let world = World::new();
    world
        .store
        .insert(TRANSCRIPTS, KEY, transcript(100, SynthLabels::Speakers));
    world.store.failures.push(Some(PortErrorKind::Unavailable));
    assert!(
        handle_message(&world.ports(), &config(), &notification(KEY))
            .await
            .unwrap_err()
            .is_retryable()
    );
}

/// An engine that reports arbitrary code-point spans of whatever text it is sent.
struct SpanNlp {
    picks: Vec<(u16, u16)>,
}

impl ClinicalNlp for SpanNlp {
    async fn analyze(&self, _api: NlpApi, text: &str) -> Result<Vec<ClinicalEntity>, PortError> {
        let chars: Vec<char> = text.chars().collect();
        Ok(self
            .picks
            .iter()
            .map(|&(a, b)| {
                let (begin, len) = (a as usize % chars.len(), 1 + b as usize % 12);
                let end = (begin + len).min(chars.len());
                let text: String = chars[begin..end].iter().collect();
                ClinicalEntity::found(
                    "MEDICAL_CONDITION",
                    "DX_NAME",
                    &text,
                    0.5,
                    begin as u32,
                    end as u32,
                )
            })
            .collect())
    }

    fn engine(&self) -> telepipe_events::results::EngineInfo {
        KeywordNlp::clinical().engine()
    }
}

fn unicode_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z]{1,10}",
        Just(" ".to_owned()),
        Just(". ".to_owned()),
        Just("\n".to_owned()),
        "[\u{4e00}-\u{4fff}]{1,300}",
        "[\u{1F600}-\u{1F64F}]{1,8}",
        "a\u{0301}\u{0327}",
        "[a-z]{500,4000}",
    ];
    prop::collection::vec(piece, 1..200).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn rebased_offsets_select_the_entity_text_in_the_full_transcript(
        text in unicode_text(),
        picks in prop::collection::vec((any::<u16>(), any::<u16>()), 1..6),
    ) {
        prop_assume!(!text.trim().is_empty());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let analysis = runtime.block_on(analyze(&SpanNlp { picks }, &text, &config())).unwrap();
        for entities in analysis.by_api.values() {
            for entity in entities {
                prop_assert_eq!(selected(&text, entity), entity.text.clone());
            }
        }
    }
}

#[test]
fn attributes_are_rebased_with_their_entity() {
    let mut entity: ClinicalEntity = serde_json::from_value(serde_json::json!({
        "id": "", "category": "MEDICATION", "type": "GENERIC_NAME", "text": "aspirin", "score": 0.9,
        "begin_offset": 5, "end_offset": 12,
        "attributes": [{"type": "DOSAGE", "text": "81 mg", "score": 0.9, "begin_offset": 13, "end_offset": 18}]
    }))
    .unwrap();
    rebase(&mut entity, 100);
    assert_eq!((entity.begin_offset, entity.end_offset), (105, 112));
    assert_eq!(
        (
            entity.attributes[0].begin_offset,
            entity.attributes[0].end_offset
        ),
        (113, 118)
    );
}

#[test]
fn synthetic_transcripts_parse_into_alternating_turns() {
    let json = transcript(500, SynthLabels::Speakers);
    let output = serde_json::from_str(&json).unwrap();
    let conversation = Conversation::from_output(&output);
    assert!(conversation
        .turns
        .windows(2)
        .all(|w| w[0].speaker != w[1].speaker));
    assert!(conversation.words.len() >= 500);
}

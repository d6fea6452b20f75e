//! The whole pipeline through the local runtime with the real engines: Whisper (the
//! model in `TELEPIPE_WHISPER_MODEL`; CI uses tiny.en) on the short synthesized clip,
//! and the offline NLP engine on its generated data (`TELEPIPE_NLP_DATA`).
//! `scripts/test.sh` sets both; elsewhere the test says what it needs and passes only
//! when `CI` is unset (CI must never skip it).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use telepipe_events::results::ResultsDocument;
use telepipe_local::nlp::OfflineNlp;
use telepipe_local::runtime::Pipeline;
use telepipe_whisper::{WhisperEngine, WhisperOptions};

#[tokio::test]
async fn a_spoken_clip_becomes_clinical_entities_with_whisper_and_the_offline_engine() {
    let Some((model, nlp_data)) = common::real_engines() else {
        return;
    };
    let (model, nlp_data) = (PathBuf::from(model), PathBuf::from(nlp_data));
    let dir = std::env::temp_dir().join(format!(
        "telepipe-real-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/short-metformin.wav");
    let folder = dir.join("buckets/recordings/recordings/sess-real");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&clip, folder.join("short-metformin.wav")).unwrap();

    let nlp = telepipe_nlp::Engine::load(&nlp_data).expect("offline NLP data loads");
    let whisper =
        WhisperEngine::load(&model, WhisperOptions::default()).expect("Whisper model loads");
    let pipeline = Pipeline::open(&dir, OfflineNlp(Arc::new(nlp)), Arc::new(whisper)).unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();

    let transcripts = dir.join("buckets/transcripts/transcripts/sess-real");
    let transcript = std::fs::read_dir(&transcripts)
        .unwrap()
        .flatten()
        .next()
        .expect("Whisper wrote a transcript")
        .path();
    let transcript_bytes = std::fs::read(&transcript).unwrap();
    let parsed: telepipe_events::transcribe::TranscribeOutput =
        serde_json::from_slice(&transcript_bytes)
            .expect("the transcript is Transcribe Medical JSON");
    assert!(parsed.results.items.len() >= 4, "words with times");

    let results = dir.join("buckets/results/clinical/sess-real");
    let doc_path = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .next()
        .expect("a results document")
        .path();
    let doc: ResultsDocument = serde_json::from_slice(&std::fs::read(doc_path).unwrap()).unwrap();
    eprintln!("transcript: {}", doc.text);
    assert!(
        doc.text.to_lowercase().contains("metformin"),
        "Whisper heard the drug: {}",
        doc.text
    );
    let drug = doc
        .rxnorm
        .iter()
        .find(|e| e.text.eq_ignore_ascii_case("metformin"))
        .expect("metformin found as a drug");
    assert!(!drug.concepts.is_empty(), "with a drug code");
    assert!(
        drug.start_ms.is_some() && drug.speaker.is_some(),
        "mapped to audio time and speaker"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Opens a fresh runtime over the real engines, or `None` where they are not configured.
fn real_pipeline(dir: &std::path::Path) -> Option<Pipeline<OfflineNlp, WhisperEngine>> {
    let (model, nlp_data) = common::real_engines()?;
    let nlp = telepipe_nlp::Engine::load(std::path::Path::new(&nlp_data))
        .expect("offline NLP data loads");
    let whisper = WhisperEngine::load(std::path::Path::new(&model), WhisperOptions::default())
        .expect("Whisper model loads");
    Some(Pipeline::open(dir, OfflineNlp(Arc::new(nlp)), Arc::new(whisper)).unwrap())
}

fn results_of(dir: &std::path::Path, session: &str) -> Vec<ResultsDocument> {
    std::fs::read_dir(dir.join("buckets/results/clinical").join(session))
        .into_iter()
        .flatten()
        .flatten()
        .map(|f| serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn mp3_m4a_flac_and_ogg_uploads_each_end_in_a_results_document() {
    let dir = common::fresh_dir("formats");
    let Some(pipeline) = real_pipeline(&dir) else {
        return;
    };
    let formats = ["mp3", "m4a", "flac", "ogg"];
    for format in formats {
        let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../samples/formats/short-metformin.{format}"));
        common::drop_recording(
            &dir,
            &format!("sess-{format}"),
            &format!("clip.{format}"),
            &std::fs::read(clip).unwrap(),
        );
    }
    pipeline.run_until_idle(|_| {}).await.unwrap();
    for format in formats {
        let docs = results_of(&dir, &format!("sess-{format}"));
        assert_eq!(docs.len(), 1, "{format}: one results document");
        eprintln!("{format}: {}", docs[0].text);
        assert!(
            docs[0].text.to_lowercase().contains("metformin"),
            "{format}: Whisper heard the drug in {}",
            docs[0].text
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_chime_capture_in_aac_chunks_is_transcribed_once_with_whisper() {
    let dir = common::fresh_dir("chime-real");
    let Some(pipeline) = real_pipeline(&dir) else {
        return;
    };
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/chime-capture/audio");
    let sink = dir.join("buckets/recordings/captures/visit-chime/audio");
    std::fs::create_dir_all(&sink).unwrap();
    for chunk in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(chunk.path(), sink.join(chunk.file_name())).unwrap();
    }
    let event = serde_json::json!({
        "version": "0", "id": "x", "detail-type": "Chime Media Pipeline State Change",
        "source": "aws.chime", "account": "1", "time": "2026-12-01T15:01:00Z", "region": "local",
        "resources": [], "detail": {"eventType": "chime:MediaPipelineDeleted",
            "externalMeetingId": "visit-chime", "mediaPipelineId": "e40ee45e-2ed1-408e-9156-f52b8208a491"},
    });
    pipeline.bus.put(&event).unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();
    let docs = results_of(&dir, "visit-chime");
    assert_eq!(docs.len(), 1, "one visit, one results document");
    eprintln!("chime capture: {}", docs[0].text);
    let text = docs[0].text.to_lowercase();
    // The follow-up visit spans all three chunks: words from the first and the last.
    assert!(text.contains("diabetes") && text.contains("both"), "{text}");
    assert!(
        docs[0].entities.len() >= 2,
        "clinical entities found: {}",
        docs[0].entities.len()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 14's acceptance: a mono two-voice sample of `telepipe demo` gives a results document
/// with two speakers, the clinician and the patient named, and the drugs the patient says
/// attributed to the patient's label.
#[tokio::test]
async fn a_mono_two_voice_visit_is_diarized_and_the_patients_drugs_are_the_patients() {
    let Some((model, nlp_data)) = common::real_engines() else {
        return;
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let voices = telepipe_whisper::diarize::VoiceEncoder::load(
        &root.join("models/voice-encoder.safetensors"),
    )
    .expect("run scripts/fetch-voice-model.sh (scripts/setup.sh does)");
    let nlp = telepipe_nlp::Engine::load(std::path::Path::new(&nlp_data)).unwrap();
    let whisper = WhisperEngine::load(std::path::Path::new(&model), WhisperOptions::default())
        .unwrap()
        .with_voice_encoder(voices, 4);
    let dir = std::env::temp_dir().join(format!(
        "telepipe-diarized-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let folder = dir.join("buckets/recordings/recordings/sess-mono");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        root.join("samples/visit-diabetes-followup.wav"),
        folder.join("visit.wav"),
    )
    .unwrap();
    let pipeline = Pipeline::open(&dir, OfflineNlp(Arc::new(nlp)), Arc::new(whisper)).unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();

    let docs = results_of(&dir, "sess-mono");
    let doc = docs.first().expect("a results document");
    eprintln!("{:?} {:?}", doc.speakers, doc.speaker_roles);
    assert_eq!(doc.speakers.len(), 2, "two speakers: {:?}", doc.speakers);
    let role_of = |label: &str| doc.speaker_roles.get(label).map(|r| r.as_str());
    let clinician = doc
        .speakers
        .iter()
        .find(|l| role_of(l) == Some("clinician"))
        .expect("the doctor is named clinician");
    let patient = doc
        .speakers
        .iter()
        .find(|l| role_of(l) == Some("patient"))
        .expect("the other voice is the patient");
    assert_ne!(clinician, patient);
    // "I take metformin 500 milligrams twice daily" and "Lisinopril 10 milligrams daily" are
    // the patient's lines.
    let metformin = doc
        .rxnorm
        .iter()
        .find(|e| e.text.eq_ignore_ascii_case("metformin"))
        .expect("metformin found");
    assert_eq!(metformin.speaker.as_deref(), Some(patient.as_str()));
    assert_eq!(metformin.role.map(|r| r.as_str()), Some("patient"));
    // The doctor asks about diabetes: the condition is the clinician's.
    let diabetes = doc
        .entities
        .iter()
        .find(|e| e.text.to_lowercase().contains("diabetes"))
        .expect("diabetes found");
    assert_eq!(diabetes.speaker.as_deref(), Some(clinician.as_str()));
    std::fs::remove_dir_all(dir).unwrap();
}

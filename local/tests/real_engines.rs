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

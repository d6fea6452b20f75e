//! The audit trail through the local runtime: a recording's processing is audited
//! (received, transcription started and finished, entities extracted), `forget` keeps
//! those entries and adds its own, nothing in them is PHI, and `verify` passes on the
//! untouched chain and fails once an entry is changed in the database.

mod common;

use common::{drop_recording, fresh_dir, wav};
use std::sync::Arc;
use telepipe_events::audit::AuditAction;
use telepipe_local::audit::{verify, LocalAuditLog};
use telepipe_local::forget::LocalSessionData;
use telepipe_local::runtime::Pipeline;
use telepipe_local::transcriber::{SpeechToText, SttError};
use telepipe_ops::session_data::forget;
use telepipe_workers::memory::KeywordNlp;
use telepipe_workers::synth::{transcript, SynthLabels};

struct FakeStt;

impl SpeechToText for FakeStt {
    fn transcribe(&self, _media: &[u8], _format: &str, _job: &str) -> Result<Vec<u8>, SttError> {
        Ok(transcript(60, SynthLabels::Speakers).into_bytes())
    }
}

#[tokio::test]
async fn processing_and_forget_are_audited_and_the_chain_catches_tampering() {
    let dir = fresh_dir("audit");
    let pipeline = Pipeline::open(&dir, KeywordNlp::clinical(), Arc::new(FakeStt)).unwrap();
    drop_recording(&dir, "visit-audit", "Maria Lopez.wav", &wav(4000));
    drop_recording(&dir, "visit-other", "call.wav", &wav(2000));
    pipeline.run_until_idle(|_| {}).await.unwrap();

    let log = LocalAuditLog::new(pipeline.db.clone()).unwrap();
    let actions = |session: &str| -> Vec<AuditAction> {
        log.entries(Some(session), 0)
            .unwrap()
            .iter()
            .map(|e| e.action)
            .collect()
    };
    let processed = actions("visit-audit");
    for expected in [
        AuditAction::RecordingReceived,
        AuditAction::TranscriptionStarted,
        AuditAction::TranscriptionFinished,
        AuditAction::EntitiesExtracted,
    ] {
        assert!(
            processed.contains(&expected),
            "{expected:?} in {processed:?}"
        );
    }

    let data = LocalSessionData::new(&dir, pipeline.db.clone()).unwrap();
    let report = forget(&data, "visit-audit", false).await.unwrap();
    assert!(report.audit.unwrap().is_completed());
    let after = actions("visit-audit");
    assert_eq!(
        &after[..processed.len()],
        processed.as_slice(),
        "forget keeps the processing history"
    );
    assert!(after.contains(&AuditAction::ForgetStarted));
    assert!(after.contains(&AuditAction::ForgetCompleted));
    let doc_text = "chest pain"; // KeywordNlp::clinical finds it in the synthetic transcript
    for entry in log.entries(None, 0).unwrap() {
        let text = entry.to_json();
        for phi in ["Maria", "Lopez", ".wav", "recordings/", doc_text] {
            assert!(!text.contains(phi), "{phi} in audit entry {text}");
        }
    }

    let intact = verify(&pipeline.db).unwrap();
    assert!(intact.is_intact(), "{intact:?}");
    assert!(intact.entries >= after.len() as u64 + 4);

    // Someone with the database file drops the guard and rewrites history.
    {
        let connection = pipeline.db.lock();
        connection
            .execute_batch("DROP TRIGGER audit_log_append_only_update;")
            .unwrap();
        connection
            .execute(
                "UPDATE audit_log SET entry = replace(entry, 'entities_extracted', 'recording_rejected') WHERE entry LIKE '%entities_extracted%'",
                [],
            )
            .unwrap();
    }
    let broken = verify(&pipeline.db).unwrap();
    assert!(!broken.is_intact(), "{broken:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

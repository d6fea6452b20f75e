//! The status store and the sweeper in the local runtime, with a stand-in speech-to-text
//! engine: every stage's transitions land in SQLite, and a transcription that fails
//! transiently is retried by the sweeper under `{job}-a2` and finishes.

mod common;

use common::{drop_recording, fresh_dir, wav};
use std::sync::Arc;
use std::time::Duration;
use telepipe_local::runtime::Pipeline;
use telepipe_local::transcriber::{SpeechToText, SttError};
use telepipe_workers::memory::KeywordNlp;
use telepipe_workers::status::{State, StatusStore};
use telepipe_workers::sweeper::SweepAction;
use telepipe_workers::synth::{transcript, SynthLabels};

/// Fails every first attempt (jobs not named `-a{n}`) with a transient error.
struct FirstAttemptFails;

impl SpeechToText for FirstAttemptFails {
    fn transcribe(&self, _media: &[u8], _format: &str, job: &str) -> Result<Vec<u8>, SttError> {
        if job.ends_with("-a2") {
            Ok(transcript(40, SynthLabels::Speakers).into_bytes())
        } else {
            Err(SttError {
                retryable: true,
                reason: "inference_failed".into(),
                detail: "stand-in failure".into(),
            })
        }
    }
}

#[tokio::test]
async fn a_transient_transcription_failure_is_retried_by_the_sweeper_and_finishes() {
    let dir = fresh_dir("sweeper");
    drop_recording(&dir, "sess-s", "Jane Doe visit.wav", &wav(100));
    let mut pipeline =
        Pipeline::open(&dir, KeywordNlp::clinical(), Arc::new(FirstAttemptFails)).unwrap();
    pipeline.intake_consumer.retry_base = Duration::ZERO;
    pipeline.clinical_consumer.retry_base = Duration::ZERO;
    pipeline.worker.retry_base_ms = 0;
    pipeline.sweep_every_rounds = 0;
    pipeline.run_until_idle(|_| {}).await.unwrap();

    let current = pipeline.status.current(Some("sess-s")).unwrap();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].state, State::Transcribing, "{current:?}");
    let base = current[0].recording.clone();

    // Nothing is due yet; eleven minutes later the failed job is found and retried.
    let now = telepipe_local::db::now_ms();
    assert!(pipeline.sweep(now).await.unwrap().actions.is_empty());
    let report = pipeline.sweep(now + 11 * 60_000).await.unwrap();
    assert_eq!(
        report.actions,
        [SweepAction::Retried {
            recording: base.clone(),
            failed_job: base.clone(),
            next_job_name: format!("{base}-a2"),
            attempt: 2,
            reason: "inference_failed".into(),
        }]
    );
    pipeline.run_until_idle(|_| {}).await.unwrap();

    let current = pipeline.status.current(Some("sess-s")).unwrap();
    eprintln!(
        "JOBS {:?}",
        telepipe_local::transcriber::jobs(&pipeline.db, None)
    );
    eprintln!("TL {:?}", pipeline.status.timeline("sess-s").await);
    assert_eq!(
        (current[0].state, current[0].attempt),
        (State::Extracted, 2)
    );
    let results = dir.join(format!("buckets/results/clinical/sess-s/{base}-a2.json"));
    assert!(results.exists(), "{}", results.display());
    // The sweep ran on an injected clock eleven minutes ahead, so order by attempt and step.
    let mut steps: Vec<(u32, State)> = pipeline
        .status
        .timeline("sess-s")
        .await
        .unwrap()
        .iter()
        .map(|t| (t.attempt, t.state))
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            (1, State::Received),
            (1, State::Transcribing),
            (1, State::Failed),
            (2, State::Transcribing),
            (2, State::Transcribed),
            (2, State::Extracting),
            (2, State::Extracted),
        ]
    );
    let failed = pipeline.status.query(0, Some(State::Failed)).await.unwrap();
    assert_eq!(failed[0].reason.as_deref(), Some("inference_failed"));
    // The event went out on the local bus, and no file name is in the status tables.
    let events: i64 = pipeline
        .db
        .lock()
        .query_row(
            "SELECT COUNT(*) FROM events WHERE detail_type = 'Transcription Failed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(events, 1);
    let dump: String = pipeline
        .db
        .lock()
        .query_row(
            "SELECT group_concat(coalesce(job_name,'') || coalesce(object_ref,'') || coalesce(reason,'')) FROM status_transitions",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!dump.contains("Jane"));
    // The derived view (`telepipe status`, the demo's table) follows the retry too.
    let derived =
        telepipe_local::status::recordings(&pipeline.db, &pipeline.queues, Some("sess-s")).unwrap();
    assert_eq!(derived.len(), 1, "{derived:?}");
    assert_eq!(derived[0].stage, "extracted", "{derived:?}");
    assert!(derived[0]
        .results_uri
        .as_deref()
        .is_some_and(|uri| uri.ends_with(&format!("{base}-a2.json"))));
    // A later sweep has nothing left to do.
    assert!(pipeline
        .sweep(now + 30 * 60_000)
        .await
        .unwrap()
        .actions
        .is_empty());
}

/// Writes a synthetic transcript for any job.
struct Transcribes;

impl SpeechToText for Transcribes {
    fn transcribe(&self, _media: &[u8], _format: &str, _job: &str) -> Result<Vec<u8>, SttError> {
        Ok(transcript(40, SynthLabels::Speakers).into_bytes())
    }
}

#[tokio::test]
async fn a_completed_job_whose_notification_was_lost_is_refed_once_and_extracted() {
    use telepipe_local::runtime::{CLINICAL_QUEUE, RESULTS_BUCKET, TRANSCRIPTS_BUCKET};
    use telepipe_workers::ports::{
        MedicalJobRequest, ObjectStore, PutOptions, SpeakerMode, Transcriber,
    };
    use telepipe_workers::status::Transition;

    let dir = fresh_dir("lost");
    let pipeline = Pipeline::open(&dir, KeywordNlp::clinical(), Arc::new(Transcribes)).unwrap();
    // A job as intake starts it; the media sits where no notification watches.
    let job = "sess-l-0123456789abcdef01234567";
    pipeline
        .store
        .put(
            RESULTS_BUCKET,
            "media/visit.wav",
            wav(100),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    let request = MedicalJobRequest {
        job_name: job.into(),
        media_uri: format!("s3://{RESULTS_BUCKET}/media/visit.wav"),
        media_format: "wav".into(),
        output_bucket: TRANSCRIPTS_BUCKET.into(),
        output_key: format!("transcripts/sess-l/{job}.json"),
        output_kms_key_id: None,
        specialty: "PRIMARYCARE".into(),
        conversation_type: "CONVERSATION".into(),
        speakers: SpeakerMode::SpeakerLabels { max_speakers: 2 },
        language_code: "en-US".into(),
        vocabulary_name: None,
        identify_phi: false,
    };
    pipeline
        .transcriber
        .start_medical_job(&request)
        .await
        .unwrap();
    let now = telepipe_local::db::now_ms();
    for state in [State::Received, State::Transcribing] {
        let t = Transition::new("sess-l", job, 1, state, now).job(job);
        pipeline.status.record(&t).await.unwrap();
    }
    pipeline.worker.run_one().await.unwrap();
    // The transcript's notification is lost.
    let lost = pipeline.queues.receive(CLINICAL_QUEUE, 10).unwrap();
    assert_eq!(lost.len(), 1);
    pipeline.queues.delete(&lost[0].receipt).unwrap();

    let report = pipeline.sweep(now + 11 * 60_000).await.unwrap();
    assert_eq!(
        report.actions,
        [SweepAction::Refed {
            recording: job.into(),
            job_name: job.into()
        }]
    );
    assert!(pipeline
        .sweep(now + 12 * 60_000)
        .await
        .unwrap()
        .actions
        .is_empty());
    pipeline.run_until_idle(|_| {}).await.unwrap();
    let current = pipeline.status.current(Some("sess-l")).unwrap();
    assert_eq!(current[0].state, State::Extracted);
    assert!(dir
        .join(format!("buckets/results/clinical/sess-l/{job}.json"))
        .exists());
}

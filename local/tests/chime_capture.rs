//! Chime SDK media captures through the local runtime: chunks dropped under the capture
//! prefix plus a `Chime Media Pipeline State Change` on the bus become exactly one
//! recording, one transcription job and one results document per session; bad captures
//! (no audio, corrupt or foreign chunks, events that name no session, the same event
//! twice) each end in a clear outcome with nothing lost and nothing done twice.
//!
//! Stand-in engines (synthetic transcripts, keyword NLP) keep these fast; the real
//! Whisper run of the committed capture is in `real_engines.rs`.

mod common;

use common::fresh_dir;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use telepipe_local::capture::concatenations;
use telepipe_local::runtime::{
    Pipeline, CAPTURE_DLQ, CLINICAL_DLQ, INTAKE_DLQ, RESULTS_BUCKET, TRANSCRIBE_DLQ,
};
use telepipe_local::transcriber::{jobs, SpeechToText, SttError};
use telepipe_workers::memory::KeywordNlp;
use telepipe_workers::synth::{transcript, SynthLabels};

/// A synthetic transcript; fails unreadable input the way the real engine does, by
/// decoding it.
struct DecodingStt;

impl SpeechToText for DecodingStt {
    fn transcribe(&self, media: &[u8], format: &str, _job: &str) -> Result<Vec<u8>, SttError> {
        telepipe_whisper::decode_media(media, format).map_err(|err| SttError {
            retryable: false,
            reason: "unreadable_audio".into(),
            detail: err.to_string(),
        })?;
        Ok(transcript(30, SynthLabels::Speakers).into_bytes())
    }
}

const PIPELINE_ID: &str = "e40ee45e-2ed1-408e-9156-f52b8208a491";

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

/// Copies the committed Chime capture (audio chunks, meeting events, data channel) to
/// `captures/{session}/`, as a capture pipeline with that sink writes it.
fn drop_capture(dir: &Path, session: &str) -> PathBuf {
    let sink = dir.join("buckets/recordings/captures").join(session);
    for folder in ["audio", "meeting-events", "data-channel"] {
        let from = samples().join("chime-capture").join(folder);
        std::fs::create_dir_all(sink.join(folder)).unwrap();
        for file in std::fs::read_dir(&from).unwrap().flatten() {
            std::fs::copy(file.path(), sink.join(folder).join(file.file_name())).unwrap();
        }
    }
    sink
}

fn pipeline_event(event_type: &str, meeting: Option<&str>) -> serde_json::Value {
    let mut detail = serde_json::json!({
        "version": "0", "eventType": event_type, "timestamp": 1_773_068_400_000u64,
        "meetingId": "6f4c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e5f",
        "mediaPipelineId": PIPELINE_ID, "mediaRegion": "us-east-1",
    });
    if let Some(meeting) = meeting {
        detail["externalMeetingId"] = meeting.into();
    }
    serde_json::json!({
        "version": "0", "id": "5ee6265a-0a40-104e-d8fd-a3b4bdd78483",
        "detail-type": "Chime Media Pipeline State Change", "source": "aws.chime",
        "account": "111122223333", "time": "2026-12-01T15:01:00Z", "region": "us-east-1",
        "resources": [], "detail": detail,
    })
}

fn open(dir: &Path) -> Pipeline<KeywordNlp, DecodingStt> {
    let mut pipeline = Pipeline::open(dir, KeywordNlp::clinical(), Arc::new(DecodingStt)).unwrap();
    pipeline.capture_consumer.retry_base = Duration::ZERO;
    pipeline.intake_consumer.retry_base = Duration::ZERO;
    pipeline.clinical_consumer.retry_base = Duration::ZERO;
    pipeline.worker.retry_base_ms = 0;
    pipeline
}

fn result_files(dir: &Path, session: &str) -> Vec<PathBuf> {
    let folder = dir
        .join("buckets")
        .join(RESULTS_BUCKET)
        .join("clinical")
        .join(session);
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

fn dead_letters(pipeline: &Pipeline<KeywordNlp, DecodingStt>) -> u64 {
    [CAPTURE_DLQ, INTAKE_DLQ, CLINICAL_DLQ, TRANSCRIBE_DLQ]
        .iter()
        .map(|q| {
            let depth = pipeline.queues.depth(q).unwrap();
            depth.visible + depth.in_flight + depth.delayed
        })
        .sum()
}

/// Details of the events of one detail-type the bus recorded.
fn published(
    pipeline: &Pipeline<KeywordNlp, DecodingStt>,
    detail_type: &str,
) -> Vec<serde_json::Value> {
    let connection = pipeline.db.lock();
    let mut statement = connection
        .prepare("SELECT envelope FROM events WHERE detail_type = ?1 ORDER BY rowid")
        .unwrap();
    let rows = statement
        .query_map([detail_type], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.unwrap()).unwrap()["detail"].clone())
        .collect();
    rows
}

#[tokio::test]
async fn a_capture_becomes_one_recording_one_job_and_one_results_document() {
    let dir = fresh_dir("capture-one");
    drop_capture(&dir, "visit-chime-1");
    let pipeline = open(&dir);
    // The chunks alone start nothing: intake never sees the capture prefix.
    pipeline.run_until_idle(|_| {}).await.unwrap();
    assert!(jobs(&pipeline.db, None).unwrap().is_empty());

    let event = pipeline_event("chime:MediaPipelineDeleted", Some("visit-chime-1"));
    assert_eq!(
        pipeline.bus.put(&event).unwrap(),
        ["chime-media-pipeline-events"]
    );
    pipeline.run_until_idle(|_| {}).await.unwrap();

    let joined = concatenations(&pipeline.db).unwrap();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].status, "Stopped");
    assert_eq!(joined[0].chunks_joined, 3);
    let recording = dir
        .join("buckets/recordings")
        .join(joined[0].sink_key.as_deref().unwrap());
    assert!(
        recording.starts_with(dir.join("buckets/recordings/recordings/visit-chime-1/audio")),
        "{}",
        recording.display()
    );
    assert!(recording.exists());
    assert_eq!(jobs(&pipeline.db, Some("visit-chime-1")).unwrap().len(), 1);
    assert_eq!(result_files(&dir, "visit-chime-1").len(), 1);
    assert_eq!(dead_letters(&pipeline), 0);
    assert_eq!(published(&pipeline, "Transcript Ready").len(), 1);

    // The same event again (EventBridge delivers at least once): nothing new.
    pipeline.bus.put(&event).unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();
    assert_eq!(concatenations(&pipeline.db).unwrap().len(), 1);
    assert_eq!(jobs(&pipeline.db, Some("visit-chime-1")).unwrap().len(), 1);
    assert_eq!(result_files(&dir, "visit-chime-1").len(), 1);
    assert_eq!(dead_letters(&pipeline), 0);
    // The join is in the audit trail once, ahead of the recording's own entries.
    let trail = telepipe_local::audit::LocalAuditLog::new(pipeline.db.clone())
        .unwrap()
        .entries(Some("visit-chime-1"), 0)
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "capture_joined").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(actions[0], "capture_joined", "{actions:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_capture_without_audio_is_reported_empty_and_the_session_told_once() {
    let dir = fresh_dir("capture-empty");
    let sink = drop_capture(&dir, "visit-chime-2");
    std::fs::remove_dir_all(sink.join("audio")).unwrap();
    let pipeline = open(&dir);
    let event = pipeline_event("chime:MediaPipelineDeleted", Some("visit-chime-2"));
    pipeline.bus.put(&event).unwrap();
    pipeline.bus.put(&event).unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();

    let failed = published(&pipeline, "Recording Capture Failed");
    assert_eq!(failed.len(), 2, "each delivery republishes the same event");
    assert_eq!(failed[0], failed[1]);
    assert_eq!(failed[0]["reason"], "capture_empty");
    let missing = published(&pipeline, "Recording Missing");
    assert_eq!(missing.len(), 1, "the sessions stage reports it once");
    assert_eq!(missing[0]["reason"], "capture_empty");
    assert!(jobs(&pipeline.db, None).unwrap().is_empty());
    assert_eq!(dead_letters(&pipeline), 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn corrupt_and_foreign_chunks_are_left_out_and_the_rest_transcribed() {
    let dir = fresh_dir("capture-corrupt");
    let sink = drop_capture(&dir, "visit-chime-3");
    let audio = sink.join("audio");
    let mut corrupt = std::fs::read(audio.join("2026-12-01-15-00-05-000.mp4")).unwrap();
    corrupt.truncate(300);
    std::fs::write(audio.join("2026-12-01-15-00-05-000.mp4"), corrupt).unwrap();
    std::fs::write(
        audio.join("2026-12-01-15-00-07-500.webm"),
        b"\x1a\x45\xdf\xa3 not decodable here",
    )
    .unwrap();
    let pipeline = open(&dir);
    pipeline
        .bus
        .put(&pipeline_event(
            "chime:MediaPipelineDeleted",
            Some("visit-chime-3"),
        ))
        .unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();

    let joined = &concatenations(&pipeline.db).unwrap()[0];
    assert_eq!((joined.chunks_joined, joined.chunks_skipped), (2, 2));
    assert!(
        (8_400..8_600).contains(&joined.audio_ms),
        "{}",
        joined.audio_ms
    );
    assert_eq!(result_files(&dir, "visit-chime-3").len(), 1);
    assert_eq!(dead_letters(&pipeline), 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn events_that_name_no_session_or_report_passing_trouble_are_acknowledged_quietly() {
    let dir = fresh_dir("capture-ignored");
    drop_capture(&dir, "visit-chime-4");
    let pipeline = open(&dir);
    for event in [
        pipeline_event("chime:MediaPipelineDeleted", None),
        pipeline_event("chime:MediaPipelineDeleted", Some("not a session!")),
        pipeline_event("chime:MediaPipelineTemporaryFailure", Some("visit-chime-4")),
    ] {
        pipeline.bus.put(&event).unwrap();
    }
    pipeline.run_until_idle(|_| {}).await.unwrap();
    assert!(concatenations(&pipeline.db).unwrap().is_empty());
    assert!(jobs(&pipeline.db, None).unwrap().is_empty());
    assert_eq!(dead_letters(&pipeline), 0);

    // A malformed event is the one thing that is dead-lettered, with its reason.
    let mut malformed = pipeline_event("chime:MediaPipelineDeleted", Some("visit-chime-4"));
    malformed["detail"]["mediaPipelineId"] = "../../etc".into();
    pipeline.bus.put(&malformed).unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();
    let letters = pipeline.queues.receive(CAPTURE_DLQ, 10).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0]
            .attributes
            .get("telepipe.reason")
            .map(String::as_str),
        Some("malformed_capture_event")
    );

    // A permanent failure of the capture: no recording will come.
    pipeline
        .bus
        .put(&pipeline_event(
            "chime:MediaPipelinePermanentFailure",
            Some("visit-chime-4"),
        ))
        .unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();
    let failed = published(&pipeline, "Recording Capture Failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["reason"], "capture_failed");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_meeting_captured_twice_gives_two_recordings_each_of_its_own_chunks() {
    let dir = fresh_dir("capture-twice");
    let sink = drop_capture(&dir, "visit-chime-5");
    let pipeline = open(&dir);
    let mut first = pipeline_event("chime:MediaPipelineDeleted", Some("visit-chime-5"));
    pipeline.bus.put(&first).unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();
    // The capture resumes: one more chunk lands in the same sink, under a new pipeline.
    let audio = sink.join("audio");
    std::fs::copy(
        audio.join("2026-12-01-15-00-00-000.mp4"),
        audio.join("2026-12-01-15-10-00-000.mp4"),
    )
    .unwrap();
    first["detail"]["mediaPipelineId"] = "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f".into();
    pipeline.bus.put(&first).unwrap();
    pipeline.run_until_idle(|_| {}).await.unwrap();
    let joined = concatenations(&pipeline.db).unwrap();
    assert_eq!(joined.len(), 2);
    assert_eq!(
        joined.iter().map(|j| j.chunks_joined).collect::<Vec<_>>(),
        [3, 1],
        "the second recording holds only the new chunk"
    );
    assert_eq!(jobs(&pipeline.db, Some("visit-chime-5")).unwrap().len(), 2);
    assert_eq!(dead_letters(&pipeline), 0);
    std::fs::remove_dir_all(dir).unwrap();
}
